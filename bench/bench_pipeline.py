"""Pipeline throughput, side by side in one run: ingest (WebSocket -> parse -> Redis), worker (tick stream ->
candles + analytics), and the Redis server's own XADD ceiling.

Prints figures; asserts nothing. Starts its own redis-server and local WebSocket server (127.0.0.1 only)
and stops them. Run from the repository root: `python bench/bench_pipeline.py [--ticks 500000]`;
`--profile DIR` also samples ingest and the worker with py-spy (those runs' figures include its overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    WsServer,
    free_port,
    group_acked,
    load,
    machine,
    preload_ticks,
    pyspy_record,
    pyspy_summary,
    rate_between,
    recorded_frames,
    redis_server,
    service_env,
    start_module,
    stop,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
Row = tuple[str, float | None, str, str]  # what, per second, load average, note


# ---------------------------------------------------------------- (a) ingest, piece by piece

async def _recv_only(url: str, seconds: float, through_source: bool) -> float:
    """Frames/s a client takes off the socket: bare websockets recv, or through BinanceSource.items()."""
    import websockets

    from ingest.sources.binance import BinanceSource
    from qs_common.venues.binance.config import combined_stream_url

    n = 0
    t0 = t_end = t_stop = 0.0
    if through_source:
        source = BinanceSource(url, SYMBOLS)
        items = source.items()
        async for item in items:
            if isinstance(item, tuple):
                n += 1
                if n == 1000 and not t0:  # warm-up done
                    t0, n = time.perf_counter(), 0
                    t_end = t0 + seconds
                elif n % 1000 == 0 and t0 and time.perf_counter() > t_end:
                    t_stop = time.perf_counter()
                    break
        await items.aclose()
    else:
        async with websockets.connect(combined_stream_url(url, SYMBOLS), compression=None, max_size=2**22,
                                      max_queue=4096, close_timeout=0.2) as ws:
            for _ in range(1000):
                await ws.recv(decode=False)
            t0 = time.perf_counter()
            t_end = t0 + seconds
            while True:
                await ws.recv(decode=False)
                n += 1
                if n % 1000 == 0 and time.perf_counter() > t_end:
                    t_stop = time.perf_counter()
                    break
    return n / (t_stop - t0)


def parse_only(frames: list[bytes], n: int) -> tuple[float, float]:
    """parse_frame alone, and parse_frame + codec.encode (what ingest does before it pipelines XADDs)."""
    from ingest.parser import parse_frame
    from qs_common import codec

    batch = (frames * (n // len(frames) + 1))[:n]
    t0 = time.perf_counter()
    for f in batch:
        parse_frame(1, f)
    parse_rate = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for f in batch:
        codec.encode(parse_frame(1, f))  # type: ignore[arg-type]
    return parse_rate, n / (time.perf_counter() - t0)


async def _publish_only(url: str, frames: list[bytes], n: int) -> float:
    """Publisher.add + flush every 1,000 (PUBLISH_BATCH) of parsed ticks: no WebSocket, no parse."""
    import redis.asyncio as aioredis

    from ingest.parser import parse_frame
    from ingest.publisher import Publisher

    ticks = [parse_frame(1, f) for f in frames]
    r = aioredis.from_url(url)
    pub = Publisher(r, "bench:publish", 10_000_000, "bench")
    t0 = time.perf_counter()
    for i in range(n):
        pub.add(ticks[i % len(ticks)])  # type: ignore[arg-type]
        if pub.buffered >= 1000:
            await pub.flush()
    await pub.flush()
    rate = n / (time.perf_counter() - t0)
    await r.delete("bench:publish")
    await r.aclose()
    return rate


def ingest_subprocess(redis_url: str, r: redis.Redis, ws: WsServer, seconds: float, tmp: Path,
                      profile: Path | None, loop: str = "asyncio", root: Path | None = None,
                      ) -> tuple[float | None, str]:
    """The real `python -m ingest` against the flood server: published entries/s from XLEN over time.

    `loop="uvloop"` runs the same ingest on uvloop's event loop (bench/ingest_uvloop.py)."""
    env = service_env(redis_url, SOURCE="binance", BINANCE_WS_URL=ws.url, SYMBOLS=",".join(SYMBOLS),
                      LOG_LEVEL="WARNING")
    module = "bench.ingest_uvloop" if loop == "uvloop" else "ingest"
    proc = start_module(module, env, tmp / f"ingest-{loop}.log", root=root or ROOT)
    spy = None
    try:
        deadline = time.monotonic() + 60
        while r.xlen("stream:ticks") < 20_000:  # imports, connect, first batches
            if proc.poll() is not None or time.monotonic() > deadline:
                return None, f"ingest did not publish (exit {proc.poll()}), see {tmp / f'ingest-{loop}.log'}"
            time.sleep(0.1)
        if profile is not None:
            spy = pyspy_record(proc.pid, seconds, profile)
        samples = []
        sent0 = ws.sent.value
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            samples.append((time.monotonic(), int(r.xlen("stream:ticks"))))
            time.sleep(0.25)
        samples.append((time.monotonic(), int(r.xlen("stream:ticks"))))
        sent = ws.sent.value - sent0
        rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        note = f"server wrote {sent / (samples[-1][0] - samples[0][0]):,.0f} frames/s meanwhile"
        return rate, note
    finally:
        if spy is not None:
            spy.wait(seconds + 30)
        stop(proc)


# ---------------------------------------------------------------- (b) worker

GroupRates = dict[str, tuple[float | None, float | None, str]]


def worker_run(
    redis_url: str, r: redis.Redis, n: int, tmp: Path, label: str, role: str = "all", timeout: float = 240,
    profile: Path | None = None, setup: Callable[[redis.Redis], None] | None = None, **env_extra: str,
) -> GroupRates:
    """Pre-load n ticks, start `python -m worker`, follow each group's acknowledged count until all are done.

    Per group: (steady rate between 10 % and 90 % acknowledged, overall rate from the first ack to the last, note).
    """
    r.flushall()
    t0 = time.perf_counter()
    counts = preload_ticks(r, n)
    print(f"  [{label}] pre-loaded {n:,} ticks ({counts['trade']:,} trades, {counts['book']:,} book tickers) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    if setup is not None:
        setup(r)
    data = tmp / f"data-{label}"
    data.mkdir()
    env = service_env(redis_url, DATA_DIR=str(data), API_PORT=str(free_port()), API_HOST="127.0.0.1",
                      SYMBOLS=",".join(SYMBOLS), LOG_LEVEL="WARNING", **env_extra)
    groups = ["candles", "analytics"] if role == "all" else [role]
    proc = start_module("worker", env, tmp / f"worker-{label}.log", "--role", role)
    samples: dict[str, list[tuple[float, int]]] = {g: [] for g in groups}
    spy = None
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                print(f"  [{label}] worker exited {proc.returncode}: see {tmp / f'worker-{label}.log'}")
                break
            acked = group_acked(r)
            now = time.monotonic()
            for g in groups:
                samples[g].append((now, acked.get(g, 0)))
            if profile is not None and spy is None and min(acked.get(g, 0) for g in groups) > n // 20:
                spy = pyspy_record(proc.pid, 15, profile)
            if all(acked.get(g, 0) >= n for g in groups):
                break
            time.sleep(0.1)
    finally:
        if spy is not None:
            spy.wait(60)
        stop(proc, timeout=90)
    out = {}
    for g in groups:
        s = samples[g]
        done = s[-1][1] if s else 0
        steady = rate_between(s, n // 10, n * 9 // 10)
        first = next((x for x in s if x[1] > 0), None)
        overall = (done - first[1]) / (s[-1][0] - first[0]) if first and s[-1][0] > first[0] else None
        note = "" if done >= n else f"only {done:,}/{n:,} acknowledged within {timeout:.0f} s"
        out[g] = (steady, overall, note)
    return out


# ---------------------------------------------------------------- (c) ceiling

def redis_ceiling(port: int, n: int) -> dict[str, float]:
    """redis-benchmark XADD, pipelined 16 deep: one field, and nine fields like a trade tick entry."""
    out = {}
    nine = ["sym", "BTCUSDT", "kind", "trade", "ts", "1723161255342", "ev", "1723161255343", "recv",
            "1723161253937085768", "id", "3735683259", "p", "61837.63000000", "q", "0.02000000", "m", "1"]
    for label, fields in (("1 field", ["f", "v"]), ("9 fields (tick-like)", nine)):
        res = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-P", "16", "-n", str(n), "-q",
                              "XADD", "bench:stream", "*", *fields], capture_output=True, text=True, timeout=120)
        m = re.search(r"([\d.]+) requests per second", res.stdout.replace(",", ""))
        out[label] = float(m.group(1)) if m else float("nan")
    return out


# ---------------------------------------------------------------- main

def fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=500_000, help="ticks pre-loaded for the worker run")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window of each ingest figure")
    ap.add_argument("--parse-n", type=int, default=200_000)
    ap.add_argument("--skip-worker", action="store_true")
    ap.add_argument("--split-roles", action="store_true", help="also run the candles and analytics roles alone")
    ap.add_argument("--profile", type=Path, help="directory for py-spy profiles of ingest and the worker")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; load {load()}")
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    frames = recorded_frames()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as d:
        tmp = Path(d)
        with redis_server(tmp / "redis") as rs:
            r = rs.client()
            # (a) ingest
            p, pe = parse_only(frames, a.parse_n)
            rows.append(("ingest: parse_frame only (in-process)", p, load(), f"{a.parse_n:,} recorded frames"))
            rows.append(("ingest: parse_frame + codec.encode", pe, load(), ""))
            pub = asyncio.run(_publish_only(rs.url, frames, a.parse_n))
            rows.append(("ingest: Publisher add+flush only (ticks parsed beforehand)", pub, load(), "batches of 1,000"))
            with WsServer() as ws:
                bare = asyncio.run(_recv_only(ws.url, a.seconds / 2, through_source=False))
                rows.append(("ingest: WebSocket receive only (websockets recv)", bare, load(), ""))
            with WsServer() as ws:
                src = asyncio.run(_recv_only(ws.url, a.seconds / 2, through_source=True))
                rows.append(("ingest: receive through BinanceSource.items()", src, load(), "+ wait_for per frame"))
            r.flushall()
            with WsServer() as ws:
                prof = a.profile / "ingest.txt" if a.profile else None
                ingest_rate, note = ingest_subprocess(rs.url, r, ws, a.seconds, tmp, prof)
            rows.append(("ingest end to end: `python -m ingest` -> XLEN", ingest_rate, load(), note))
            print(f"  ingest done; load {load()}", flush=True)
            # (b) worker
            worker_rate: float | None = None
            if not a.skip_worker:
                prof = a.profile / "worker.txt" if a.profile else None
                res = worker_run(rs.url, r, a.ticks, tmp, "all", profile=prof)
                for g, (steady, overall, note) in res.items():
                    rows.append((f"worker ({g} group, role all)", steady, load(),
                                 f"overall {fmt(overall)}/s {note}".strip()))
                rates = [res[g][0] for g in res if res[g][0] is not None]
                worker_rate = min(rates) if len(rates) == 2 else None  # type: ignore[type-var]
                if a.split_roles:
                    for role in ("candles", "analytics"):
                        res = worker_run(rs.url, r, a.ticks, tmp, role, role=role)
                        steady, overall, note = res[role]
                        rows.append((f"worker ({role} group, role {role} alone)", steady, load(),
                                     f"overall {fmt(overall)}/s {note}".strip()))
            # (c) ceiling
            r.flushall()
            ceil = redis_ceiling(rs.port, 500_000)
            for label, v in ceil.items():
                rows.append((f"redis-benchmark XADD -P 16, {label}", v, load(), "server ceiling"))
            r.close()

    ceiling = ceil["9 fields (tick-like)"]
    print()
    print("| what | per s | load avg | note |")
    print("| --- | ---: | --- | --- |")
    for what, rate, la, note in rows:
        print(f"| {what} | {fmt(rate)} | {la} | {note} |")
    print()
    if ingest_rate:
        print(f"ingest / ceiling (9-field XADD): {ingest_rate / ceiling:.1%}; target 100,000 frames/s: "
              f"{'met' if ingest_rate >= 100_000 else 'NOT met'} ({fmt(ingest_rate)})")
    if worker_rate:
        print(f"worker (slower group) / ceiling: {worker_rate / ceiling:.1%}; target 50,000 ticks/s: "
              f"{'met' if worker_rate >= 50_000 else 'NOT met'} ({fmt(worker_rate)})")
    if a.profile:
        for name, incl in (("ingest", ("parse_frame", "flush", "items", "encode")),
                           ("worker", ("candle_consumer.py", "analytics_consumer.py", "consumer.py", "xreadgroup",
                                       "apply_trades", "_publish_latest"))):
            print(f"\npy-spy {name}:")
            print(pyspy_summary(a.profile / f"{name}.txt", inclusive=incl))


if __name__ == "__main__":
    main()
