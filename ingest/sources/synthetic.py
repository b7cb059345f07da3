"""A seeded, realistic feed for demos without network: frames in Binance's exact combined-stream format.

The first symbol is BTC-like (geometric random walk from 60,000); the second is ETH-like and cointegrated
with it (y = 0.05·x + 100 + an Ornstein-Uhlenbeck spread), so the pair analytics have something to find;
further symbols are independent random walks. Trades and book tickers interleave at `rate` frames per
second per symbol, stamped with the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator

from ingest.sources.base import FeedEvent, SourceItem

_TICK = 0.01
_BETA, _ALPHA = 0.05, 100.0


def _fmt(value: float, places: int = 8) -> str:
    return f"{value:.{places}f}"


class SyntheticSource:
    name = "synthetic"

    def __init__(self, symbols: tuple[str, ...], seed: int = 7, rate: float = 50.0, limit: int | None = None) -> None:
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.rate = rate
        self.limit = limit  # stop after this many frames (tests, benchmarks)
        self.prices = {s: 60_000.0 if i == 0 else 100.0 for i, s in enumerate(symbols)}
        self.spread = 0.0
        # Trade and update ids keep rising across restarts, so stored history never sees a repeated id.
        base = int(time.time()) * 1_000
        self.trade_ids = dict.fromkeys(symbols, base)
        self.update_ids = dict.fromkeys(symbols, base)

    def _step_prices(self, dt_s: float) -> None:
        rng = self.rng
        vol = 0.5 * math.sqrt(dt_s / 86_400)  # ~50% annualised-ish per day scale, keeps demos lively
        for i, s in enumerate(self.symbols):
            if i == 1:
                continue
            self.prices[s] *= math.exp(rng.gauss(0.0, vol))
        if len(self.symbols) > 1:
            # OU spread with a half-life of about a minute
            self.spread += -self.spread * (dt_s / 90.0) + rng.gauss(0.0, 0.6 * math.sqrt(dt_s))
            self.prices[self.symbols[1]] = _BETA * self.prices[self.symbols[0]] + _ALPHA + self.spread

    def _frame(self, symbol: str, now_ms: int) -> bytes:
        rng = self.rng
        mid = round(self.prices[symbol] / _TICK) * _TICK
        lower = symbol.lower()
        if rng.random() < 0.35:
            self.trade_ids[symbol] += 1
            buyer_maker = rng.random() < 0.5
            price = mid - _TICK / 2 if buyer_maker else mid + _TICK / 2
            data = {
                "e": "trade", "E": now_ms, "s": symbol, "t": self.trade_ids[symbol],
                "p": _fmt(round(price / _TICK) * _TICK), "q": _fmt(round(rng.expovariate(1 / 0.05), 5) + 0.00001),
                "T": now_ms, "m": buyer_maker, "M": True,
            }
            return json.dumps({"stream": f"{lower}@trade", "data": data}, separators=(",", ":")).encode()
        self.update_ids[symbol] += 1
        data = {
            "u": self.update_ids[symbol], "s": symbol,
            "b": _fmt(mid - _TICK), "B": _fmt(round(rng.uniform(0.01, 5), 5)),
            "a": _fmt(mid), "A": _fmt(round(rng.uniform(0.01, 5), 5)),
        }
        return json.dumps({"stream": f"{lower}@bookTicker", "data": data}, separators=(",", ":")).encode()

    async def items(self) -> AsyncIterator[SourceItem]:
        yield FeedEvent("connected", "synthetic feed")
        sent = 0
        interval = 0.01
        per_tick = self.rate * interval * len(self.symbols)
        carry = 0.0
        last = time.monotonic()
        while self.limit is None or sent < self.limit:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self._step_prices(now - last)
            last = now
            carry += per_tick
            count, carry = int(carry), carry - int(carry)
            now_ms = time.time_ns() // 1_000_000
            for _ in range(count):
                symbol = self.symbols[self.rng.randrange(len(self.symbols))]
                yield time.time_ns(), self._frame(symbol, now_ms)
                sent += 1
        yield FeedEvent("finished", "synthetic limit reached")
