"""Shared fixtures: real redis-server processes on free ports, fixture paths, subprocess helpers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
# The product subscribes depth by default; the suite's processes (which inherit this environment) do not, so
# the tick-stream figures they assert stay those of trades and book tickers. Order-book tests set DEPTH=true.
os.environ.setdefault("DEPTH", "false")
FIXTURES = ROOT / "tests" / "fixtures"
BTC_RECORDING = FIXTURES / "btcusdt_20240808.gz"
ETH_RECORDING = FIXTURES / "ethusdt_20240808.gz"
BTC_KLINES_1M = FIXTURES / "BTCUSDT-1m-2024-08-08.csv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


def start_redis(
    workdir: Path, appendonly: bool = False, port: int | None = None, appendfsync: str | None = None,
    wait_s: float = 10.0,
) -> RedisServer:
    """A private redis-server in `workdir`, on a free port (or `port`, to start the same server again)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/install-deps.sh (make test does)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    fsync = ["--appendfsync", appendfsync] if appendfsync else []
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "yes" if appendonly else "no", *fsync, "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, proc, workdir)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if server.client().ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server did not start on port {port}")


def restart_redis(server: RedisServer, appendfsync: str | None = None, wait_s: float = 10.0) -> RedisServer:
    """The same redis-server (port, directory, append-only file) started again after it was stopped or killed."""
    return start_redis(server.dir, appendonly=True, port=server.port, appendfsync=appendfsync, wait_s=wait_s)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    yield server
    server.proc.terminate()
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def service_env(redis_url: str, data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a subprocess of ours: this interpreter's path, test-friendly settings."""
    env = {k: v for k, v in os.environ.items() if k not in {"SOURCE", "SYMBOLS", "PAIRS", "REPLAY_FILES"}}
    # No backfill and no kline check unless a test asks for them: there is no Binance here, and its REST
    # candles would mix in.
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
               BACKFILL_ENABLED="false", KLINE_CHECK="false")
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
