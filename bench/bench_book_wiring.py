"""Order book wiring benchmark (issue 11): what DEPTH costs ingest, what a depth entry costs Redis, `GET /book`
through the worker's HTTP server, and the book role's drain rate.

1. Ingest: both recordings (74,867 frames: 15,863 trades, 52,117 book tickers, 6,885 depth diffs, 2 snapshots)
   replayed at full speed (`--speed 0`) into a private redis-server, DEPTH=false and DEPTH=true interleaved; the
   ingest process's CPU time (user + sys, from wait4) and wall time. The difference per depth frame, times the
   live rate of the default setup (2 symbols x 10 diffs/s), is what DEPTH costs live.
2. Redis: MEMORY USAGE of stream:depth per entry.
3. The book role (`python -m worker --role book`) draining those 6,887 entries: wall time to drained.
4. `GET /book?symbol=BTCUSDT&depth=20|50` on `python -m worker --role candles` over HTTP keep-alive (p50, p99).

    python bench/bench_book_wiring.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import RECORDINGS, free_port, load, machine, pct, redis_server, service_env, start_module, stop  # noqa: E402

FRAMES = 74_867
DEPTH_FRAMES = 6_885 + 2
LIVE_DIFFS_PER_S = 20  # 2 symbols, one diff per 100 ms each


def ingest_run(url: str, depth: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one full-speed replay of both recordings."""
    args = [sys.executable, "-m", "ingest", "--source", "replay", "--speed", "0"]
    for f in RECORDINGS:
        args += ["--replay-file", str(f)]
    env = service_env(url, DEPTH="true" if depth else "false", LOG_LEVEL="WARNING")
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ingest exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gets", type=int, default=2_000)
    args = ap.parse_args()
    print(f"machine: {machine()}  load: {load()}")
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as srv:
        r = srv.client()
        best: dict[bool, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for depth in (False, True):
                r.flushall()
                cpu, wall = ingest_run(srv.url, depth)
                old = best.get(depth)
                best[depth] = (min(cpu, old[0]), min(wall, old[1])) if old else (cpu, wall)
        for depth, (cpu, wall) in best.items():
            print(f"| ingest replay, DEPTH={str(depth).lower()} | CPU {cpu:.2f} s ({cpu / FRAMES * 1e6:.1f} µs/frame) "
                  f"| wall {wall:.2f} s | {FRAMES / wall:,.0f} frames/s |")
        extra = (best[True][0] - best[False][0]) / DEPTH_FRAMES
        print(f"| extra ingest CPU per depth frame | {extra * 1e6:.1f} µs | live, 2 symbols: "
              f"{extra * LIVE_DIFFS_PER_S * 100:.3f} % of a core |")

        # stream:depth as the last DEPTH=true run left it
        entries = r.xlen("stream:depth")
        mem = r.memory_usage("stream:depth", samples=0) or 0
        print(f"| stream:depth | {entries} entries | {mem / 1e6:.1f} MB | {mem / max(entries, 1):,.0f} B/entry |")

        log = Path(tmp) / "book.log"
        t0 = time.perf_counter()
        book = start_module("worker", service_env(srv.url, API_PORT=str(free_port()), LOG_LEVEL="WARNING",
                                                  BINANCE_REST_URL="http://127.0.0.1:9"), log, "--role", "book")
        try:
            while True:
                groups = {g["name"].decode(): g for g in r.xinfo_groups("stream:depth")}
                g = groups.get("book")
                if g is not None and g["lag"] == 0 and g["pending"] == 0 and r.exists("book:depth:ETHUSDT"):
                    break
                if time.perf_counter() - t0 > 300:
                    raise SystemExit("book role did not drain in 300 s")
                time.sleep(0.02)
            drain = time.perf_counter() - t0
        finally:
            stop(book)
        print(f"| book role: start + drain {entries} entries (incl. metrics per 100 ms of event time) | "
              f"{drain:.2f} s | {entries / drain:,.0f} entries/s (start-up included) |")

        port = free_port()
        api = start_module("worker", service_env(srv.url, API_PORT=str(port), DATA_DIR=str(Path(tmp) / "data"),
                                                 LOG_LEVEL="WARNING"), Path(tmp) / "api.log", "--role", "candles")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("API did not start")
                    time.sleep(0.1)
                # /health (DuckDB and Redis pings) as the server's own floor for comparison
                for path, params in (("/book", {"symbol": "BTCUSDT", "depth": "20"}),
                                     ("/book", {"symbol": "BTCUSDT", "depth": "50"}), ("/health", {})):
                    times = []
                    for _ in range(args.gets):
                        t = time.perf_counter()
                        resp = client.get(path, params=params)
                        times.append((time.perf_counter() - t) * 1e3)
                        assert resp.status_code == 200
                    print(f"| GET {path} {params.get('depth', '')} over HTTP | p50 {pct(times, 50):.2f} ms | "
                          f"p99 {pct(times, 99):.2f} ms | {len(resp.content):,} B |")
        finally:
            stop(api)


if __name__ == "__main__":
    main()
