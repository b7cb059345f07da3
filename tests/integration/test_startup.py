"""Start-up refuses nonsense with one line: the real processes, their exit status and their stderr."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, python_module, service_env

pytestmark = pytest.mark.integration

PROCESSES = [python_module("worker"), python_module("ingest", "--source", "synthetic")]


def run(args: list[str], redis_url: str, tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    proc = subprocess.run(args, env=service_env(redis_url, tmp_path / "data", **env), capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr.strip().splitlines()


def problems(lines: list[str]) -> list[str]:
    """The lines that are not routine INFO logs (a process that reached Redis logs its progress first, e.g. the
    registry seeded): what start-up said about what went wrong."""
    return [line for line in lines if " INFO " not in line]


@pytest.mark.parametrize("args", PROCESSES, ids=["worker", "ingest"])
@pytest.mark.parametrize("url", ["redis://:99999/0", "redis://host:notaport", "redis://localhost:6379/zero"])
def test_a_malformed_redis_url_stops_at_once_with_one_line(tmp_path, args, url):
    code, lines = run(args, url, tmp_path, REDIS_WAIT_S="30")  # no waiting: it would not help
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("invalid setting REDIS_URL: "), lines


@pytest.mark.parametrize("args", PROCESSES, ids=["worker", "ingest"])
def test_an_unreachable_redis_is_waited_for_then_named_in_one_line(tmp_path, args):
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    code, lines = run(args, url, tmp_path, REDIS_WAIT_S="1")
    assert code == 1
    *waiting, last = lines
    assert waiting and all("waiting for Redis at redis://:***@127.0.0.1" in line for line in waiting), lines
    assert last.startswith(f"cannot reach Redis at REDIS_URL=redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}"), last
    assert "Connection refused" in last and "secret" not in "\n".join(lines)


def test_a_taken_api_port_stops_the_worker_with_one_line(tmp_path, redis_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the old worker ran on without its API: /health never answered and nothing said why
        code, lines = run(python_module("worker"), redis_server.url, tmp_path, API_PORT=str(port))
    assert code == 1
    expected = f"cannot serve the API on API_HOST=127.0.0.1 API_PORT={port}: [Errno 98] Address already in use"
    assert problems(lines) == [expected], lines


def test_a_duckdb_file_held_by_another_process_stops_the_worker_with_one_line(tmp_path, redis_server):
    db = tmp_path / "data" / "market_data.duckdb"
    db.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('ok', flush=True); "
                               "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        code, lines = run(python_module("worker", "--role", "candles"), redis_server.url, tmp_path,
                          API_PORT=str(free_port()))
    finally:
        holder.communicate(timeout=30)
    assert code == 1
    errors = problems(lines)
    assert len(errors) == 1 and errors[0].startswith(f"cannot open the DuckDB file {db} (DATA_DIR="), lines
    assert "lock" in errors[0].lower()
