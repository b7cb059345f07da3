"""Ingest speed, side by side in one run: per-frame costs in-process (the schema path against the fast path),
receive rates of two WebSocket clients, and the real `python -m ingest` end to end on asyncio and on uvloop.

Prints figures; asserts nothing. Starts its own redis-server and local WebSocket server (127.0.0.1 only).
Run from the repository root: `python bench/bench_ingest.py [--seconds 8] [--profile DIR]`.
In-process figures are CPU time per frame (`time.process_time`, best of `--rounds`, variants interleaved), so
other engineers' load moves them less than wall time would; end-to-end figures are wall time (frames/s into
Redis) and do move with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pipeline import ingest_subprocess  # noqa: E402
from bench.common import (  # noqa: E402
    ROOT,
    WsServer,
    load,
    machine,
    pyspy_summary,
    recorded_frames,
    redis_server,
    service_env,
    start_module,
    stop,
)
from ingest.parser import EdgeRules, parse_frame, parse_frame_schema  # noqa: E402
from qs_common import codec  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT")
Row = tuple[str, str, str, str]  # what, figure, load average, note


def per_frame_costs(frames: list[bytes], rounds: int) -> list[Row]:
    """CPU µs per frame of each step, the schema (Pydantic) way and the fast way, interleaved round by round."""
    rules = EdgeRules(frozenset(SYMBOLS), 10**13)  # the time checks run (the recordings are from 2024)
    ticks = [parse_frame(1, f, rules) for f in frames]
    stream = b"stream:ticks"
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("parse: Pydantic `model_validate_json` + edge rules (before)",
         lambda: [parse_frame_schema(1, f, rules) for f in frames]),
        ("parse: msgspec fast path + edge rules (`parse_frame`)", lambda: [parse_frame(1, f, rules) for f in frames]),
        ("encode: `encode` dict + `hiredis.pack_command` (before)",
         lambda: [codec.pack_xadd_fields(stream, codec.encode(t)) for t in ticks]),  # type: ignore[arg-type]
        ("encode: one RESP template (`codec.pack_xadd`)",
         lambda: [codec.pack_xadd(stream, t) for t in ticks]),  # type: ignore[arg-type]
    ]
    best = dict.fromkeys((name for name, _ in cases), float("inf"))
    for _ in range(rounds):
        for name, fn in cases:
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    la = load()
    return [(name, f"{s / len(frames) * 1e6:.2f} µs ({len(frames) / s:,.0f}/s)", la, f"{len(frames):,} frames")
            for name, s in best.items()]


async def _publish_only(url: str, frames: list[bytes], n: int) -> tuple[float, float]:
    """Publisher.add + flush every 1,000 parsed ticks: (wall frames/s, CPU µs per frame of this process)."""
    import redis.asyncio as aioredis

    from ingest.publisher import Publisher

    ticks = [parse_frame(1, f) for f in frames]
    r = aioredis.from_url(url)
    pub = Publisher(r, "bench:publish", 10_000_000, "bench")
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        pub.add(ticks[i % len(ticks)])  # type: ignore[arg-type]
        if pub.buffered >= 1000:
            await pub.flush()
    await pub.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await r.delete("bench:publish")
    await r.aclose()
    return n / wall, cpu / n * 1e6


async def _recv_websockets(url: str, seconds: float) -> float:
    import websockets

    from qs_common.venues.binance.config import combined_stream_url

    async with websockets.connect(combined_stream_url(url, SYMBOLS), compression=None, max_size=2**22,
                                  max_queue=4096, close_timeout=0.2) as ws:
        for _ in range(1000):
            await ws.recv(decode=False)
        n, t0 = 0, time.perf_counter()
        while True:
            await ws.recv(decode=False)
            n += 1
            if n % 1000 == 0 and time.perf_counter() - t0 > seconds:
                return n / (time.perf_counter() - t0)


async def _recv_picows(url: str, seconds: float) -> float | None:
    """The same frames through picows (a Cython WebSocket client, callback per frame), payload copied to bytes."""
    try:
        from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
    except ImportError:
        return None
    from qs_common.venues.binance.config import combined_stream_url

    done = asyncio.get_running_loop().create_future()

    class Counter(WSListener):  # type: ignore[misc]
        n = 0
        t0 = 0.0

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            frame.get_payload_as_bytes()
            self.n += 1
            if self.n == 1000 and not self.t0:  # warm-up done
                self.t0, self.n = time.perf_counter(), 0
            elif self.n % 1000 == 0 and self.t0 and time.perf_counter() - self.t0 > seconds and not done.done():
                done.set_result(self.n / (time.perf_counter() - self.t0))
                transport.disconnect()

    transport, _ = await ws_connect(Counter, combined_stream_url(url, SYMBOLS))
    try:
        return float(await asyncio.wait_for(done, seconds * 4 + 30))
    finally:
        transport.disconnect()


def _uvloop(coro_fn: Callable[[], Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_fn())


def receive_rates(seconds: float) -> list[Row]:
    rows: list[Row] = []
    variants: list[tuple[str, Callable[[str], Any]]] = [
        ("receive: websockets `recv()` (asyncio)", lambda u: asyncio.run(_recv_websockets(u, seconds))),
        ("receive: websockets `recv()` (uvloop)", lambda u: _uvloop(lambda: _recv_websockets(u, seconds))),
        ("receive: picows (asyncio)", lambda u: asyncio.run(_recv_picows(u, seconds))),
        ("receive: picows (uvloop)", lambda u: _uvloop(lambda: _recv_picows(u, seconds))),
    ]
    for what, run in variants:
        with WsServer() as ws:
            rate = run(ws.url)
        rows.append((what, "n/a (not installed)" if rate is None else f"{rate:,.0f}/s", load(), "frames, no parse"))
    return rows


def end_to_end(url: str, r: Any, seconds: float, tmp: Path, profile: Path | None,
               loops: tuple[str, ...] = ("asyncio", "uvloop")) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for loop in loops:
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            out[loop] = None
            continue
        r.flushall()
        with WsServer() as ws:
            prof = profile / f"ingest-{loop}.txt" if profile else None
            rate, note = ingest_subprocess(url, r, ws, seconds, tmp, prof, loop=loop)
        out[loop] = rate
        print(f"  ingest end to end ({loop}): {rate or 0:,.0f} frames/s; {note}; load {load()}", flush=True)
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_cpu_per_frame(url: str, r: Any, seconds: float, tmp: Path, root: Path) -> tuple[float | None, float]:
    """`python -m ingest` of `root` against the flood server: (frames/s into Redis, CPU µs per frame of the ingest
    process). The CPU figure is what a frame costs ingest however busy the machine is; the rate is not."""
    env = service_env(url, SOURCE="binance", SYMBOLS=",".join(SYMBOLS), LOG_LEVEL="WARNING")
    r.flushall()
    with WsServer() as ws:
        env["BINANCE_WS_URL"] = ws.url
        proc = start_module("ingest", env, tmp / "ingest-cpu.log", root=root)
        try:
            deadline = time.monotonic() + 60
            while r.xlen("stream:ticks") < 20_000:  # imports, connect, first batches
                if proc.poll() is not None or time.monotonic() > deadline:
                    return None, float("nan")
                time.sleep(0.1)
            n0, c0, t0 = r.xlen("stream:ticks"), _cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            n1, c1, t1 = r.xlen("stream:ticks"), _cpu_s(proc.pid), time.monotonic()
        finally:
            stop(proc)
    return (n1 - n0) / (t1 - t0), (c1 - c0) / max(n1 - n0, 1) * 1e6


def before_after(url: str, r: Any, seconds: float, tmp: Path, before: Path, rounds: int) -> list[Row]:
    """End to end of the ingest in `before` (a checkout of an older commit) and of this tree, alternated
    round by round so that the load hits both alike; the best round of each, in frames/s and in CPU µs per frame."""
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for i in range(rounds):
        for label, root in (("before", before), ("now", ROOT)):
            rate, us = ingest_cpu_per_frame(url, r, seconds, tmp, root)
            print(f"  round {i + 1} {label}: {rate or 0:,.0f} frames/s, {us:.1f} µs CPU a frame in ingest; "
                  f"load {load()}", flush=True)
            best[label] = max(best.get(label, 0.0), rate or 0.0)
            cpu[label] = min(cpu.get(label, float("inf")), us)
    la = load()
    return [(f"end to end, best of {rounds} alternated: {label} ({root_name})", f"{rate:,.0f}/s", la,
             f"asyncio; {cpu[label]:.1f} µs CPU a frame in ingest (least of the rounds)")
            for (label, rate), root_name in zip(best.items(), (str(before), "this tree"), strict=True)]


def _print(rows: list[Row]) -> None:
    print()
    print("| what | figure | load avg | note |")
    print("| --- | ---: | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0, help="measuring window of each end-to-end figure")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--publish-n", type=int, default=100_000)
    ap.add_argument("--profile", type=Path, help="directory for py-spy profiles of ingest")
    ap.add_argument("--before", type=Path, help="a checkout of an older commit: its ingest end to end, alternated "
                    "with this tree's (e.g. `git archive <commit> | tar -x -C DIR`)")
    ap.add_argument("--only-before-after", action="store_true", help="with --before: only that comparison")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; load {load()}")
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    frames = recorded_frames()
    rows = [] if a.only_before_after else per_frame_costs(frames, a.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as d, redis_server(Path(d) / "redis") as rs:
        r = rs.client()
        if a.before:
            rows += before_after(rs.url, r, a.seconds, Path(d), a.before, a.rounds)
        if a.only_before_after:
            _print(rows)
            return
        wall, cpu = asyncio.run(_publish_only(rs.url, frames, a.publish_n))
        rows.append(("publish: `Publisher.add` + `flush` per 1,000, parsed ticks", f"{wall:,.0f}/s",
                     load(), f"{cpu:.2f} µs CPU a tick in the publishing process"))
        rows += receive_rates(a.seconds / 2)
        for loop, rate in end_to_end(rs.url, r, a.seconds, Path(d), a.profile).items():
            rows.append((f"**end to end**: `python -m ingest` -> XLEN ({loop})",
                         "n/a" if rate is None else f"{rate:,.0f}/s", load(), "target ≥ 100,000"))
        r.close()
    _print(rows)
    if a.profile:
        for p in sorted(a.profile.glob("ingest-*.txt")):
            print(f"\npy-spy {p.name}:")
            print(pyspy_summary(p, inclusive=("parse_frame", "flush", "items", "pack_xadd", "_handle", "recv")))


if __name__ == "__main__":
    main()
