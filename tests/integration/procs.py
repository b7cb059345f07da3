"""Start our processes as real subprocesses and wait for them to reach a state."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import free_port, python_module, service_env


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # conditions poll services that may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


class Proc:
    running: list[Proc] = []  # killed after each test by the autouse fixture, so a failure leaves no orphans

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.p = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        Proc.running.append(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)


class WorkerProc(Proc):
    def __init__(self, redis_url: str, data_dir: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        super().__init__(python_module("worker"), service_env(redis_url, data_dir, API_PORT=str(self.port), **env), log)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy() -> bool:
            if self.p.poll() is not None:
                raise AssertionError(f"worker exited {self.p.returncode}:\n{self.log()}")
            return httpx.get(f"{self.api}/health", timeout=2).status_code == 200

        wait_for(healthy, timeout, "worker /health")

    def candles_csv(self, symbol: str, interval: str = "1m", **params: str) -> str:
        q = {"symbol": symbol, "interval": interval, "format": "csv", **params}
        resp = httpx.get(f"{self.api}/candles", params=q, timeout=30)
        resp.raise_for_status()
        return resp.text


def run_replay(redis_url: str, files: list[Path], log: Path, timeout: float = 120, **env: str) -> str:
    args = python_module("ingest", "--source", "replay", "--speed", "0")
    for f in files:
        args += ["--replay-file", str(f)]
    proc = subprocess.run(args, env=service_env(redis_url, **env), capture_output=True, text=True, timeout=timeout)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def status(r: redis.Redis, process: str) -> dict[str, Any]:
    raw = r.get(f"status:{process}")
    return json.loads(raw) if raw else {}


def drained(r: redis.Redis, stream: str = "stream:ticks", groups: tuple[str, ...] = ("candles", "analytics")) -> bool:
    """Every group has read every entry and acknowledged it."""
    info = {g["name"].decode(): g for g in r.xinfo_groups(stream)}
    return all(g in info and info[g]["lag"] == 0 and info[g]["pending"] == 0 for g in groups)
