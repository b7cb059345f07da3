"""The live WebSocket source's receive path (issues 10 and 12): frames/s taken off one local connection.

Side by side, alternated so the machine's load hits each alike:
- the pre-issue-10 loop: `websockets`' `recv()` inline in the generator, one re-armed `asyncio.timeout` (copied
  here),
- `BinanceSource.items()`: frame by frame (since issue 12 on picows: callbacks per frame, a list per socket read,
  what lets several connections and the venue's replies share one stream of items),
- `BinanceSource.batches()`: the same a socket read at a time (what `python -m ingest` consumes).

    .venv/bin/python -m bench.bench_ingest_source [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import websockets

from bench.common import WsServer, load
from ingest.sources.binance import BinanceSource
from qs_common.venues.binance.config import combined_stream_url

SYMBOLS = ("BTCUSDT", "ETHUSDT")
WARMUP = 2_000


async def inline_loop(url: str, seconds: float) -> float:
    """The receive loop BinanceSource had before issue 10, minus the reconnect handling around it."""
    n, t0 = 0, 0.0
    async with websockets.connect(combined_stream_url(url, SYMBOLS), compression=None, max_size=2**22,
                                  max_queue=4096, close_timeout=0.2) as ws:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as watchdog:
            while True:
                watchdog.reschedule(loop.time() + 10)
                raw = await ws.recv(decode=False)
                watchdog.reschedule(None)
                item = (time.time_ns(), raw)
                if b"serverShutdown" in item[1]:
                    break
                n += 1
                if not t0 and n == WARMUP:
                    t0, n = time.perf_counter(), 0
                elif t0 and n % 1000 == 0 and time.perf_counter() - t0 > seconds:
                    return n / (time.perf_counter() - t0)
    return 0.0


async def through_source(url: str, seconds: float) -> float:
    n, t0, rate = 0, 0.0, 0.0
    items = BinanceSource(url, SYMBOLS).items()
    async for item in items:
        if not isinstance(item, tuple):
            continue
        n += 1
        if not t0 and n == WARMUP:
            t0, n = time.perf_counter(), 0
        elif t0 and n % 1000 == 0 and time.perf_counter() - t0 > seconds:
            rate = n / (time.perf_counter() - t0)
            break
    await items.aclose()  # type: ignore[attr-defined]
    return rate


async def through_batches(url: str, seconds: float) -> float:
    n, t0, rate = 0, 0.0, 0.0
    batches = BinanceSource(url, SYMBOLS).batches()
    async for batch in batches:
        n += sum(1 for item in batch if isinstance(item, tuple))
        if not t0 and n >= WARMUP:
            t0, n = time.perf_counter(), 0
        elif t0 and time.perf_counter() - t0 > seconds:
            rate = n / (time.perf_counter() - t0)
            break
    await batches.aclose()  # type: ignore[attr-defined]
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    variants = {"websockets recv() inline (before issue 10)": inline_loop,
                "BinanceSource.items() (picows)": through_source,
                "BinanceSource.batches() (picows, what ingest reads)": through_batches}
    results: dict[str, list[float]] = {name: [] for name in variants}
    with WsServer() as ws:
        for _ in range(a.rounds):
            for name, run in variants.items():
                results[name].append(asyncio.run(run(ws.url, a.seconds)))
    print(f"load {load()}")
    print(f"| receive path | frames/s (median of {a.rounds}) | all rounds |")
    print("| --- | --- | --- |")
    for name, rates in results.items():
        med = sorted(rates)[len(rates) // 2]
        print(f"| {name} | {med:,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} |")


if __name__ == "__main__":
    main()
