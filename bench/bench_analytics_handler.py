"""The analytics consumer's handler in process: µs per tick over pre-loaded recorded ticks, no consumer group.

What one `AnalyticsHandler` call costs per tick (decode, symbol statistics, as-of alignment, the engines, alerts,
the writes to a real redis-server), without XREADGROUP and acknowledgement, so a change to the handler shows on
its own. Prints figures; asserts nothing. Run from the repository root:
`python -m bench.bench_analytics_handler [--ticks 100000] [--batch 5000] [--pairs ETHUSDT/BTCUSDT,...]`.
The figure is the handler thread's CPU time per tick (process time; the webhook and registry threads are idle),
steadier than wall time when other work shares the cores; wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import redis

from bench.common import load, machine, preload_ticks, redis_server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--pairs", default="ETHUSDT/BTCUSDT")
    ap.add_argument("--repeat", type=int, default=3, help="runs (each on a fresh handler); the best is printed too")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        os.environ.update(REDIS_URL=server.url, SYMBOLS="BTCUSDT,ETHUSDT", PAIRS=a.pairs)
        from qs_common.settings import Settings
        from worker.analytics_consumer import AnalyticsHandler

        r = server.client()
        counts = preload_ticks(r, a.ticks, groups=())
        entries = r.xrange("stream:ticks")
        batches = [entries[i:i + a.batch] for i in range(0, len(entries), a.batch)]
        print(f"machine {machine()}; {counts}; batch {a.batch}; pairs {a.pairs}")
        runs = []
        for _ in range(a.repeat):
            for key in r.scan_iter("control:*"):
                r.delete(key)
            r.delete("stream:analytics")
            handler = AnalyticsHandler(Settings(), r)  # type: ignore[call-arg]
            t0, c0 = time.perf_counter(), time.process_time()
            for b in batches:
                handler(b)
            wall = (time.perf_counter() - t0) / len(entries) * 1e6
            runs.append((time.process_time() - c0) / len(entries) * 1e6)  # CPU: steadier than wall on a busy box
            st = handler.status()
            if hasattr(handler, "close"):
                handler.close()
            print(f"  CPU {runs[-1]:.2f} µs/tick (wall {wall:.2f})  observations {st['observations']}"
                  f" published {st['published']}  load {load()}")
        print(f"handler: best CPU {min(runs):.2f} µs/tick ({1e6 / min(runs):,.0f} ticks/s of one core)  load {load()}")
        warm_ups(r, a.pairs.split(",")[0])


def warm_ups(r: redis.Redis, pair: str) -> None:
    """What a warm-up (issue 10) holds the consumer for: read back, decode and replay, by window."""
    try:
        from qs_common.control import PairSettings
        from qs_common.settings import Settings
        from worker import warmup
        from worker.pair_slots import new_slot
    except ImportError:  # a checkout from before issue 10
        return
    y, x = pair.split("/")
    for window in (300, 5_000, 100_000):
        slot = new_slot(Settings(), PairSettings(y=y, x=x, window=window))  # type: ignore[call-arg]
        t0 = time.perf_counter()
        w = warmup.warm(r, "stream:ticks", [slot])[slot.pair]
        print(f"warm-up, window {window:>7,}: {(time.perf_counter() - t0) * 1e3:7.1f} ms wall for {w.observations:,}"
              f" observations replayed  load {load()}")


if __name__ == "__main__":
    main()
