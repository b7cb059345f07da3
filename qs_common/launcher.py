"""`python -m qs_common.launcher`: the whole product on this machine without Docker (`make run`, `make demo`).

Starts ingest, worker and dashboard as child processes. Redis comes from REDIS_URL if it answers; otherwise,
when REDIS_URL was not set and `redis-server` is on PATH, a private one is started with its data under
DATA_DIR/redis (append-only file, so ticks survive a restart). If neither, it says so and stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import redis

from qs_common.settings import Settings, load_settings


def _redis_answers(url: str) -> bool:
    try:  # a plain client: PING is answered by any node, a Redis Cluster's seed node too
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _start_redis(settings: Settings) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    parts = urlsplit(settings.redis_url)
    folder = (settings.data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--port", str(parts.port or 6379), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "yes", "--save", "", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if _redis_answers(settings.redis_url):
            return proc
        time.sleep(0.1)
    proc.terminate()
    return None


DASHBOARD_PORT = 8501
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _where(host: str, port: int) -> str:
    """The address a server listens on, and who can reach it."""
    shown = f"[{host}]" if ":" in host else host
    if host in _LOOPBACK:
        return f"http://{shown}:{port} (this machine only)"
    return f"http://{shown}:{port} (reachable from your network)"


def api_url(settings: Settings) -> str:
    """Where the other processes find the worker API: API_URL when set, else the worker's own API_HOST:API_PORT."""
    if "API_URL" in os.environ:
        return settings.api_url
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"


def startup_message(settings: Settings) -> str:
    lines = [
        f"Quant-Stream is starting ({settings.source.value} feed, symbols {', '.join(settings.symbols)}).",
        f"Dashboard:  {_where(settings.dashboard_host, DASHBOARD_PORT)}   [DASHBOARD_HOST]",
        f"Worker API: {_where(settings.api_host, settings.api_port)}   [API_HOST, API_PORT]",
        "Access token: " + ("set (ACCESS_TOKEN); the dashboard asks for it, API writes need it"
                            if settings.access_token else "none (ACCESS_TOKEN unset)"),
    ]
    exposed = {settings.dashboard_host, settings.api_host} - _LOOPBACK
    if exposed and not settings.access_token:
        lines.append("WARNING: listening beyond this machine without ACCESS_TOKEN: anyone who can reach it can "
                     "use it. Set ACCESS_TOKEN, and put a TLS reverse proxy in front (see README, Threat model).")
    lines.append("Stop: Ctrl-C")
    return "\n".join(lines)


def main() -> int:
    settings = load_settings()
    redis_proc = None
    if not _redis_answers(settings.redis_url):
        if "REDIS_URL" in os.environ or settings.redis_cluster:  # a cluster is never started here
            print(f"Redis does not answer at REDIS_URL={settings.redis_url}: start it or fix the URL.", file=sys.stderr)
            return 1
        redis_proc = _start_redis(settings)
        if redis_proc is None:
            print("No Redis: nothing answers at redis://localhost:6379/0 and redis-server is not on PATH.\n"
                  "Install it (apt-get install redis-server) or set REDIS_URL to a running Redis.", file=sys.stderr)
            return 1
        print(f"started redis-server for this run (data in {settings.data_dir / 'redis'})", file=sys.stderr)

    # the dashboard reads the worker's API, and the synthetic source imports its history through it
    env = {**os.environ, "REDIS_URL": settings.redis_url, "API_URL": api_url(settings)}
    py = sys.executable
    children = {
        "worker": subprocess.Popen([py, "-m", "worker"], env=env),
        "ingest": subprocess.Popen([py, "-m", "ingest"], env=env),
        # `python -m dashboard`: Streamlit bound to DASHBOARD_HOST with the hardened options (dashboard/serve.py)
        "dashboard": subprocess.Popen([py, "-m", "dashboard", "--port", str(DASHBOARD_PORT)], env=env),
    }
    print(startup_message(settings), file=sys.stderr)

    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    while not stopping:
        time.sleep(0.5)
        for name, child in children.items():
            if child.poll() is not None and not (name == "ingest" and child.returncode == 0):
                print(f"{name} exited with status {child.returncode}; stopping the rest", file=sys.stderr)
                stopping, code = True, 1
    # ingest first (it flushes), then the worker drains what is left, then the rest
    for name in ("ingest", "worker", "dashboard"):
        child = children[name]
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
    if redis_proc is not None:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
