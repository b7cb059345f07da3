"""Dashboard benchmark (prints figures; not a test).

1. Server time of the live pair page's fragments (`numbers`: the ~0.5 s key numbers; `charts`: candles, fair
   value, spread/z, hedge ratio, correlation) with 10k live analytics entries in `stream:analytics` and 7 days
   of 1m history for two symbols behind the API. Each rerun first appends new entries (what arrives in 0.5 s)
   and moves the forming candle, so the incremental reads do real work.
2. Memory (RSS) of the process running the dashboard over a long series of reruns: should be flat.

Runs the app in-process with Streamlit's AppTest against a real redis-server and a stand-in worker API
(tests/integration/browser_util.py). Usage: python bench/bench_dashboard.py [--reruns 300] [--memory-reruns 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from qs_common import keys  # noqa: E402
from tests.integration.browser_util import WorkerApi, seed_live, start_redis  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
PAIR = "ETHUSDT/BTCUSDT"
DAY_MS = 86_400_000


def history(days: int = 7, seed: int = 7) -> dict[str, list[dict[str, str]]]:
    """A 1m random walk per symbol, ETH following BTC (β ≈ 0.043) so the pair analytics are meaningful."""
    rng = random.Random(seed)
    n = days * 1440
    start = 1_723_161_600_000 - n * 60_000
    btc, eth = 61_000.0, 2_650.0
    out: dict[str, list[dict[str, str]]] = {"BTCUSDT": [], "ETHUSDT": []}
    for i in range(n):
        t = str(start + i * 60_000)
        r = rng.gauss(0, 0.0008)
        for sym, px, ret in (("BTCUSDT", btc, r), ("ETHUSDT", eth, r + rng.gauss(0, 0.0003))):
            o, c = px, px * (1 + ret)
            h, lo = max(o, c) * (1 + abs(rng.gauss(0, 2e-4))), min(o, c) * (1 - abs(rng.gauss(0, 2e-4)))
            out[sym].append(
                {
                    "open_time": t,
                    "open": f"{o:.2f}",
                    "high": f"{h:.2f}",
                    "low": f"{lo:.2f}",
                    "close": f"{c:.2f}",
                    "volume": f"{rng.uniform(5, 50):.4f}",
                    "quote_volume": "0",
                    "trades": str(rng.randint(100, 2000)),
                    "taker_buy_volume": "0",
                }
            )
            if sym == "BTCUSDT":
                btc = c
            else:
                eth = c
    return out


def push_ticks(r: redis.Redis, ts: int, count: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(
            keys.ANALYTICS_STREAM,
            {
                "v": "1",
                "pair": PAIR,
                "ts": ts + i,
                "recv_ns": (ts + i) * 10**6,
                "y": "2660",
                "x": "61600",
                "ols_beta": 0.043,
                "ols_alpha": 1.0,
                "ols_r2": 0.97,
                "spread": 0.1,
                "zscore": random.gauss(0, 1),
                "n": 300,
            },
        )
    pipe.execute()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reruns", type=int, default=300)
    p.add_argument("--memory-reruns", type=int, default=2_000)
    p.add_argument("--ticks-per-rerun", type=int, default=20)
    args = p.parse_args()
    candles = history()
    for url in start_redis():
        with WorkerApi(candles, url) as api:
            os.environ.update(REDIS_URL=url, API_URL=api.url, SYMBOLS="ETHUSDT,BTCUSDT", PAIRS=PAIR)
            st.cache_resource.clear()
            st.cache_data.clear()
            r = redis.Redis.from_url(url, decode_responses=True)
            seed_live(r, candles, analytics=0)
            last_ms = int(candles["BTCUSDT"][-1]["open_time"])
            push_ticks(r, last_ms - 10_000 * 50, 10_000)
            print(
                f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}, Streamlit {st.__version__}"
            )
            print(
                f"history: {len(candles['BTCUSDT'])} 1m candles per symbol x 2; live: "
                f"{r.xlen(keys.ANALYTICS_STREAM)} analytics entries, +{args.ticks_per_rerun} per rerun"
            )
            for shown in (300, 2_000):
                at = AppTest.from_file(APP, default_timeout=120)
                t0 = time.perf_counter()
                at.run()
                first = (time.perf_counter() - t0) * 1000
                if shown != 300:
                    at.select_slider(key="candles").set_value(shown).run()
                at.session_state["_timings"] = {}
                forming = json.loads(r.get(keys.forming_candle_key("BTCUSDT", "1m")))
                ts = last_ms
                whole = []
                for i in range(args.reruns):
                    ts += args.ticks_per_rerun
                    push_ticks(r, ts, args.ticks_per_rerun)
                    forming["close"] = f"{float(forming['close']) + (0.01 if i % 2 else -0.01):.2f}"
                    r.set(keys.forming_candle_key("BTCUSDT", "1m"), json.dumps(forming))
                    t0 = time.perf_counter()
                    at.run()
                    whole.append((time.perf_counter() - t0) * 1000)
                assert not at.exception, [e.value for e in at.exception]
                tm = at.session_state["_timings"]
                print(f"\ncandles shown {shown} (+60 warm-up), {args.reruns} reruns; first run {first:.0f} ms")
                for name in ("numbers", "charts"):
                    xs = list(tm[name])
                    print(f"  fragment {name:8s} p50 {pct(xs, 0.5):6.1f} ms   p95 {pct(xs, 0.95):6.1f} ms")
                print(f"  whole script rerun (AppTest)  p50 {pct(whole, 0.5):6.1f} ms   p95 {pct(whole, 0.95):6.1f} ms")

            at = AppTest.from_file(APP, default_timeout=120).run()
            ts = last_ms + 10**7
            samples = []
            for i in range(args.memory_reruns + 1):
                push_ticks(r, ts + i * args.ticks_per_rerun, args.ticks_per_rerun)
                at.run()
                if i % (args.memory_reruns // 10) == 0:
                    samples.append((i, rss_mb(), r.xlen(keys.ANALYTICS_STREAM)))
            print(f"\nmemory over {args.memory_reruns} reruns (+{args.ticks_per_rerun} entries each):")
            for i, mb, n in samples:
                print(f"  rerun {i:5d}: RSS {mb:7.1f} MB   stream entries {n}")
            print(f"  growth from rerun {samples[1][0]} to {samples[-1][0]}: {samples[-1][1] - samples[1][1]:+.1f} MB")


if __name__ == "__main__":
    main()
