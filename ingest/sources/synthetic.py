"""A seeded, realistic feed for demos without network: frames in Binance's exact combined-stream format.

The market model (BTC-like walk, a cointegrated ETH-like second symbol, realistic volatility) is in
`synthetic_model`. With `history_h` > 0 the source first draws that many hours of the same model as candles
and hands them to the worker's import API in the background (`synthetic_history`), then goes on live from
where the history ended, so a demo shows full charts at once. Trades and book tickers interleave at `rate`
frames per second per symbol, stamped with the wall clock.

Symbols follow the live registry like the Binance feed (`set_symbols`): a symbol added at runtime starts at
once as a further independent random walk from 100 (no past is drawn for it), a removed one stops; the model
keeps every symbol it ever had, so the first two keep their BTC-like and cointegrated ETH-like roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from ingest.sources.base import FeedEvent, SourceItem
from ingest.sources.synthetic_history import write_history
from ingest.sources.synthetic_model import START_OTHER, TICK, TRADE_SHARE, State, history, step

log = logging.getLogger("ingest.synthetic")


def _fmt(value: float, places: int = 8) -> str:
    return f"{value:.{places}f}"


class SyntheticSource:
    name = "synthetic"

    def __init__(self, symbols: tuple[str, ...], seed: int = 7, rate: float = 50.0, limit: int | None = None,
                 history_h: float = 0.0, api_url: str = "", token: str = "") -> None:
        self.symbols = symbols  # the ones generated now
        self.model_symbols = symbols  # every symbol the model has held (added ones appended), in role order
        self.seed = seed
        self.rng = random.Random(seed)
        self.rate = rate
        self.limit = limit  # stop after this many frames (tests, benchmarks)
        self.history_h = history_h
        self.api_url, self.token = api_url, token
        self.state = State.start(symbols)
        self.history_task: asyncio.Task[bool] | None = None
        # Trade and update ids keep rising across restarts, so stored history never sees a repeated id.
        base = int(time.time()) * 1_000
        self.trade_ids = dict.fromkeys(symbols, base)
        self.update_ids = dict.fromkeys(symbols, base)

    @property
    def prices(self) -> dict[str, float]:
        return self.state.prices

    def _step_prices(self, dt_s: float) -> None:
        step(self.state, self.model_symbols, dt_s, self.rng.gauss)

    async def set_symbols(self, symbols: tuple[str, ...]) -> None:
        """Generate exactly these from the next frame on; new ones start from the model's default price."""
        wanted = tuple(dict.fromkeys(s.upper() for s in symbols))
        base = int(time.time()) * 1_000
        for sym in wanted:
            if sym not in self.state.prices:
                self.model_symbols = (*self.model_symbols, sym)
                self.state.prices[sym] = START_OTHER
                self.trade_ids.setdefault(sym, base)
                self.update_ids.setdefault(sym, base)
        self.symbols = wanted

    def subscription_status(self) -> dict[str, Any]:
        return {"streams": 2 * len(self.symbols)}

    def _frame(self, symbol: str, now_ms: int) -> bytes:
        rng = self.rng
        mid = round(self.prices[symbol] / TICK) * TICK
        lower = symbol.lower()
        if rng.random() < TRADE_SHARE:
            self.trade_ids[symbol] += 1
            buyer_maker = rng.random() < 0.5
            # a sell (buyer is maker) trades at the bid, a buy at the ask
            price = mid - TICK if buyer_maker else mid
            data = {
                "e": "trade", "E": now_ms, "s": symbol, "t": self.trade_ids[symbol],
                "p": _fmt(round(price / TICK) * TICK), "q": _fmt(round(rng.expovariate(1 / 0.05), 5) + 0.00001),
                "T": now_ms, "m": buyer_maker, "M": True,
            }
            return json.dumps({"stream": f"{lower}@trade", "data": data}, separators=(",", ":")).encode()
        self.update_ids[symbol] += 1
        data = {
            "u": self.update_ids[symbol], "s": symbol,
            "b": _fmt(mid - TICK), "B": _fmt(round(rng.uniform(0.01, 5), 5)),
            "a": _fmt(mid), "A": _fmt(round(rng.uniform(0.01, 5), 5)),
        }
        return json.dumps({"stream": f"{lower}@bookTicker", "data": data}, separators=(",", ":")).encode()

    async def _start_history(self) -> None:
        """Draw the past (off the event loop), go on from its end state, and import it in the background."""
        if self.history_h <= 0 or not self.symbols:
            return
        now_ms = time.time_ns() // 1_000_000
        hist = await asyncio.to_thread(history, self.symbols, self.seed, now_ms, self.history_h, self.rate)
        self.state = hist.state
        for sym in self.model_symbols:  # added while the past was drawn
            self.state.prices.setdefault(sym, START_OTHER)
        log.info("synthetic history: %.0f h of 1s/1m/5m candles up to %d, writing them to %s",
                 self.history_h, hist.end_ms, self.api_url)
        self.history_task = asyncio.create_task(write_history(hist, self.api_url, self.token))

    async def items(self) -> AsyncIterator[SourceItem]:
        await self._start_history()
        yield FeedEvent("connected", "synthetic feed")
        try:
            async for item in self._live():
                yield item
        finally:
            if self.history_task is not None and not self.history_task.done():
                self.history_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.history_task

    async def _live(self) -> AsyncIterator[SourceItem]:
        sent = 0
        interval = 0.01
        carry = 0.0
        last = time.monotonic()
        while self.limit is None or sent < self.limit:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self._step_prices(now - last)
            last = now
            carry += self.rate * interval * len(self.symbols)  # the set can change between rounds
            count, carry = int(carry), carry - int(carry)
            now_ms = time.time_ns() // 1_000_000
            for _ in range(count if self.symbols else 0):
                symbol = self.symbols[self.rng.randrange(len(self.symbols))]
                yield time.time_ns(), self._frame(symbol, now_ms)
                sent += 1
        yield FeedEvent("finished", "synthetic limit reached")
