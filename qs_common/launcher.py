"""`python -m qs_common.launcher`: the whole product on this machine without Docker (`make run`, `make demo`).

Starts ingest, the worker (one process per role: candles with the API, analytics, book) and the dashboard as child
processes. Redis comes from REDIS_URL if it answers; otherwise,
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
# One process per consumer group (issue 12): in one process the analytics thread waits for the candle, book,
# research and API threads' hold on the GIL (up to the 5 ms switch interval each time); two processes had the lower
# tick -> analytics p99 at 1k and 5k frames/s (docs/benchmarks.md). `worker` is the DuckDB owner and serves the API.
WORKER_ROLES = {"worker": "candles", "analytics": "analytics", "book": "book"}


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """The worker processes' environment: one BLAS thread unless told otherwise. The analytics process limits
    itself; the candle process's research fits (GARCH, pair scans) did too while they shared its process, and
    more threads only spin on these small solves while taking the analytics process's core."""
    return {"OPENBLAS_NUM_THREADS": "1", **env}
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


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Ingest first (it flushes), then the worker processes drain what is left (together), then the rest."""
    for names in (("ingest",), tuple(WORKER_ROLES), ("dashboard",)):
        running = [children[name] for name in names if children[name].poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        for child in running:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


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
        **{name: subprocess.Popen([py, "-m", "worker", "--role", role], env=worker_env(env))
           for name, role in WORKER_ROLES.items()},
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
    _stop_children(children)
    if redis_proc is not None:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
