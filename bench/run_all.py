"""The benchmark contract of issue 12, in one run on one machine: `make bench` (= `python -m bench`).

Measures and prints side by side, each figure with the load average when it was taken:
- ingest end to end from the local WebSocket server into Redis (frames/s), on asyncio and on uvloop, with the
  per-frame costs and the receive rates of two WebSocket clients beside it (bench_ingest);
- the worker per group, each in its own process (`--role candles`, `--role analytics` with every analytics
  entry published and alert rules on), ticks/s acknowledged (bench_pipeline.worker_run);
- tick -> analytics publish latency p50/p99/p99.9 at 1k, 5k and 20k frames/s, the worker as two processes
  (bench_latency.latency_run);
- RSS of every process after `--minutes` at 5k frames/s, and its growth (bench_memory);
- the Redis XADD ceiling with redis-benchmark (bench_pipeline.redis_ceiling);
- the figures docs/benchmarks.md recorded before (`PREVIOUS`), and the targets.

`--quick` is a short sanity run (small counts, seconds instead of minutes); `--only` picks parts. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_ingest, bench_latency, bench_memory, bench_pipeline  # noqa: E402
from bench.common import load, machine, pct, recorded_frames, redis_server  # noqa: E402

PARTS = ("parse", "ingest", "worker", "latency", "memory", "ceiling")

# What docs/benchmarks.md recorded before this run (2026-11-21, commit d78d296, load average 1.3 to 3.0).
PREVIOUS = {
    "ingest end to end (asyncio)": "39,900/s",
    "worker, candles group": "17,600/s (role all)",
    "worker, analytics group": "33,700/s (role alone, all on)",
    "latency at 5000 frames/s": "p50 44.7 / p99 92.5 ms (flush 50 ms)",
    "redis-benchmark XADD -P 16, 9 fields (tick-like)": "238,000–438,000/s",
}
TARGETS = {
    "ingest end to end (asyncio)": "≥ 100,000/s",
    "worker, candles group": "≥ 100,000/s",
    "worker, analytics group": "≥ 100,000/s",
    "latency at 5000 frames/s": "p99 ≤ 10 ms",
}


@dataclass
class Figure:
    what: str
    value: str
    load: str
    note: str = ""


@dataclass
class Plan:
    ticks: int
    seconds: float
    rounds: int
    rates: tuple[float, ...]
    lat_seconds: float
    lat_warmup: float
    minutes: float
    ceiling_n: int


FULL = Plan(ticks=300_000, seconds=8, rounds=5, rates=(1_000, 5_000, 20_000), lat_seconds=20, lat_warmup=5,
            minutes=10, ceiling_n=500_000)
QUICK = Plan(ticks=30_000, seconds=3, rounds=1, rates=(1_000, 5_000, 20_000), lat_seconds=4, lat_warmup=3,
             minutes=0.5, ceiling_n=20_000)


def run_parse(plan: Plan, out: list[Figure]) -> None:
    for what, value, la, note in bench_ingest.per_frame_costs(recorded_frames(), plan.rounds):
        out.append(Figure(what, value, la, note))


def run_ingest(plan: Plan, url: str, r: Any, tmp: Path, out: list[Figure]) -> None:
    wall, cpu = asyncio.run(bench_ingest._publish_only(url, recorded_frames(), plan.ticks))
    out.append(Figure("publish: Publisher.add + flush per 1,000", f"{wall:,.0f}/s", load(), f"{cpu:.2f} µs CPU a tick"))
    for what, value, la, note in bench_ingest.receive_rates(plan.seconds / 2):
        out.append(Figure(what, value, la, note))
    for loop, rate in bench_ingest.end_to_end(url, r, plan.seconds, tmp, None).items():
        out.append(Figure(f"ingest end to end ({loop})", "n/a" if rate is None else f"{rate:,.0f}/s", load(),
                          "python -m ingest -> XLEN"))


def run_worker(plan: Plan, url: str, r: Any, tmp: Path, out: list[Figure]) -> None:
    for role, extra in (("candles", {}), ("analytics", bench_latency.ALL_ON)):
        setup = bench_latency.add_rules if role == "analytics" else None
        res = bench_pipeline.worker_run(url, r, plan.ticks, tmp, f"{role}-alone", role=role, setup=setup, **extra)
        steady, overall, note = res[role]
        out.append(Figure(f"worker, {role} group", "n/a" if steady is None else f"{steady:,.0f}/s", load(),
                          f"own process; overall {bench_pipeline.fmt(overall)}/s {note}".strip()))


def run_latency(plan: Plan, url: str, r: Any, tmp: Path, out: list[Figure]) -> None:
    for rate in plan.rates:
        res = bench_latency.latency_run(url, r, tmp, f"rate{rate:g}", rate, plan.lat_warmup, plan.lat_seconds,
                                        None, True)
        v: list[float] = res["total"]  # type: ignore[assignment]
        ing: list[float] = res["ingest"]  # type: ignore[assignment]
        figure = (f"p50 {pct(v, 50):.1f} / p99 {pct(v, 99):.1f} / p99.9 {pct(v, 99.9):.1f} ms" if v else "n/a")
        part = f"ingest part p50 {pct(ing, 50):.1f} / p99 {pct(ing, 99):.1f} ms; " if ing else ""
        out.append(Figure(f"latency at {rate:g} frames/s", figure, str(res["load"]),
                          f"recv -> analytics XADD, two worker processes; {part}n = {len(v):,}, "
                          f"unmatched {res['unmatched']}"))


def run_memory(plan: Plan, url: str, r: Any, tmp: Path, out: list[Figure]) -> None:
    res = bench_memory.memory_run(url, r, tmp, 5_000, plan.minutes, every=min(10.0, plan.minutes * 6),
                                  warmup=min(30.0, plan.minutes * 30))
    for name, v in res.items():
        growth = v["mb_per_min"]
        out.append(Figure(f"memory at 5000 frames/s: {name}", f"{v['last']:.1f} MB", load(),
                          f"{v['first']:.1f} MB after warm-up, peak {v['peak']:.1f} MB, "
                          f"{0 if growth is None else growth:+.2f} MB/min over {v['minutes']:.1f} min"))


def run_ceiling(plan: Plan, port: int, out: list[Figure]) -> None:
    for label, v in bench_pipeline.redis_ceiling(port, plan.ceiling_n).items():
        out.append(Figure(f"redis-benchmark XADD -P 16, {label}", f"{v:,.0f}/s", load(), "server ceiling"))


def print_table(figures: list[Figure]) -> None:
    print()
    print("| what | now | before (docs/benchmarks.md) | target | load avg | note |")
    print("| --- | ---: | ---: | --- | --- | --- |")
    for f in figures:
        print(f"| {f.what} | {f.value} | {PREVIOUS.get(f.what, '')} | {TARGETS.get(f.what, '')} | {f.load} | "
              f"{f.note} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short sanity run (minutes become seconds)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    ap.add_argument("--minutes", type=float, help="memory run length (default 10, quick 0.5)")
    a = ap.parse_args(argv)
    plan = QUICK if a.quick else FULL
    if a.minutes is not None:
        plan.minutes = a.minutes
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; "
          f"load {load()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-all-") as d, redis_server(Path(d) / "redis") as rs:
        tmp, r = Path(d), rs.client()
        steps = {"parse": lambda: run_parse(plan, figures),
                 "ingest": lambda: run_ingest(plan, rs.url, r, tmp, figures),
                 "worker": lambda: run_worker(plan, rs.url, r, tmp, figures),
                 "latency": lambda: run_latency(plan, rs.url, r, tmp, figures),
                 "memory": lambda: run_memory(plan, rs.url, r, tmp, figures),
                 "ceiling": lambda: (r.flushall(), run_ceiling(plan, rs.port, figures))}
        for part in PARTS:
            if part in parts:
                print(f"-- {part} (load {load()})", flush=True)
                steps[part]()
        r.close()
    print_table(figures)


if __name__ == "__main__":
    main()
