"""`make run` / `make demo` (the launcher) run the worker as one process per role (issue 12), each consuming, and
stop them all cleanly on Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port, python_module, service_env
from tests.integration.procs import Proc, wait_for

pytestmark = pytest.mark.integration

ROLES = {"candles", "analytics", "book"}


def children(pid: int) -> dict[int, list[str]]:
    """The launcher's child processes and their command lines."""
    pids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = {}
    for child in pids:
        try:
            out[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")[:-1]
        except FileNotFoundError:  # exited meanwhile
            continue
    return out


def worker_roles(pid: int) -> dict[str, int]:
    """role -> pid of every `python -m worker --role R` child."""
    out = {}
    for child, cmd in children(pid).items():
        if cmd[1:3] == ["-m", "worker"]:
            out[cmd[4] if cmd[3:4] == ["--role"] else "all"] = child
    return out


def test_the_launcher_runs_one_worker_process_per_role(tmp_path, redis_server):
    env = service_env(redis_server.url, tmp_path / "data", SOURCE="synthetic", SYNTHETIC_HISTORY_H="0",
                      API_PORT=str(free_port()),
                      # a loopback address of its own: port 8501 on 127.0.0.1 may be another test's dashboard
                      DASHBOARD_HOST="127.0.0.57")
    launcher = Proc(python_module("qs_common.launcher"), env, tmp_path / "launcher.log")
    r = redis.Redis.from_url(redis_server.url)

    def consuming() -> bool:
        if launcher.p.poll() is not None:
            raise AssertionError(f"launcher exited {launcher.p.returncode}:\n{launcher.log()}")
        return all(r.exists(f"status:worker-{role}") for role in ROLES) and r.xlen("stream:analytics") > 0

    wait_for(consuming, 120, "status records of every role and analytics entries")
    roles = worker_roles(launcher.p.pid)
    assert set(roles) == ROLES, roles  # three processes, not one `python -m worker` holding every group
    assert len(set(roles.values())) == 3
    assert launcher.stop(signal.SIGINT, timeout=150) == 0, launcher.log()
    for pid in roles.values():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert "Traceback" not in launcher.log()
