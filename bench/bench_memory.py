"""Memory of each process of the pipeline over time at a steady feed: is it flat?

The local WebSocket server paces the recorded trades and book tickers of both symbols at `--rate` frames/s (unique
ids, increasing trade times); the real ingest and the worker as two processes (`--role candles`, `--role
analytics`, every analytics entry published) run for `--minutes`; every `--every` seconds the resident set size
(VmRSS) of each process and Redis's `used_memory` are sampled. Prints the first sample after the warm-up, the
last, the peak and the growth per minute (a least-squares slope over the samples after the warm-up).

Prints figures; asserts nothing. Starts its own redis-server and local WebSocket server (127.0.0.1 only).
Run from the repository root: `python bench/bench_memory.py [--minutes 10] [--rate 5000]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    WsServer,
    free_port,
    load,
    machine,
    redis_server,
    service_env,
    start_module,
    stop,
    wait_first_ticks,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
ALL_ON = {"ANALYTICS_MAX_RATE": "100000"}


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares growth in MB per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return None if var == 0 else 60 * sum((t - mt) * (v - mv) for t, v in samples) / var


def memory_run(url: str, r: Any, tmp: Path, rate: float, minutes: float, every: float = 10.0,
               warmup: float = 30.0) -> dict[str, dict[str, float | None]]:
    """Per process: first (after warm-up), last and peak RSS in MB, and growth in MB/min."""
    r.flushall()
    data = tmp / "data-memory"
    data.mkdir(exist_ok=True)
    wenv = service_env(url, DATA_DIR=str(data), API_HOST="127.0.0.1", SYMBOLS=",".join(SYMBOLS),
                       LOG_LEVEL="WARNING", **ALL_ON)
    procs: dict[str, Any] = {}
    samples: dict[str, list[tuple[float, float]]] = {}
    try:
        for role in ("candles", "analytics"):
            procs[f"worker --role {role}"] = start_module(
                "worker", dict(wenv, API_PORT=str(free_port())), tmp / f"worker-mem-{role}.log", "--role", role)
        with WsServer(rate=rate) as ws:
            deadline = time.monotonic() + 60
            while len(r.xinfo_groups("stream:ticks") if r.exists("stream:ticks") else []) < 2:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the workers did not create their groups, see {tmp}/worker-mem-*.log")
                time.sleep(0.2)
            ienv = service_env(url, SOURCE="binance", BINANCE_WS_URL=ws.url, SYMBOLS=",".join(SYMBOLS),
                               LOG_LEVEL="WARNING")
            procs["ingest"] = start_module("ingest", ienv, tmp / "ingest-mem.log")
            wait_first_ticks(r, procs["ingest"], tmp / "ingest-mem.log")
            pids = {name: p.pid for name, p in procs.items()} | {"redis-server": r.info("server")["process_id"]}
            t0 = time.monotonic()
            end = t0 + warmup + minutes * 60
            while time.monotonic() < end:
                now = time.monotonic() - t0
                for name, pid in pids.items():
                    mb = rss_mb(pid)
                    if mb is not None:
                        samples.setdefault(name, []).append((now, mb))
                used = r.info("memory")["used_memory"] / 2**20
                samples.setdefault("redis used_memory", []).append((now, used))
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    print(f"  memory run: {', '.join(dead)} exited early, see {tmp}", flush=True)
                    break
                time.sleep(every)
    finally:
        for p in procs.values():
            stop(p, timeout=60)
    out: dict[str, dict[str, float | None]] = {}
    for name, s in samples.items():
        steady = [x for x in s if x[0] >= warmup] or s
        out[name] = {"first": steady[0][1], "last": steady[-1][1], "peak": max(v for _, v in steady),
                     "mb_per_min": slope_per_min(steady), "minutes": (steady[-1][0] - steady[0][0]) / 60}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=5_000.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d, redis_server(Path(d) / "redis") as rs:
        res = memory_run(rs.url, rs.client(), Path(d), a.rate, a.minutes, a.every)
    print(f"\n| process, {a.rate:g} frames/s | RSS after warm-up | after | peak | growth | load avg |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, v in res.items():
        print(f"| {name} | {v['first']:.1f} MB | {v['last']:.1f} MB ({v['minutes']:.1f} min) | {v['peak']:.1f} MB | "
              f"{v['mb_per_min'] or 0:+.2f} MB/min | {load()} |")


if __name__ == "__main__":
    main()
