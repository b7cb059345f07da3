"""The analytics consumer group: ticks -> aligned pair observations -> pair metrics on `stream:analytics`.

The math lives in `worker.analytics` (pure, no I/O); this module only reads ticks, keeps the last price
of each leg (as-of alignment), throttles what it publishes, and writes the latest top of book per symbol.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import redis

from qs_common import keys
from qs_common.settings import Settings
from worker.consumer import Entry

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"


class PairModel(Protocol):
    def update(self, ts_ms: int, y: float, x: float) -> dict[str, float]: ...


class AnalyticsHandler:
    def __init__(self, settings: Settings, r: redis.Redis, make_model: Callable[[], PairModel]) -> None:
        self.r = r
        self.use_mid = settings.analytics_price == "mid"
        self.pairs = settings.pair_legs()
        self.min_gap_ms = 1000.0 / settings.analytics_max_rate
        self.maxlen = settings.analytics_maxlen
        self.models = {pair: make_model() for pair in self.pairs}
        self.legs: dict[str, list[tuple[str, str]]] = {}
        for pair in self.pairs:
            for leg in pair:
                self.legs.setdefault(leg, []).append(pair)
        self.last_price: dict[str, float] = {}
        self.last_published_ms: dict[tuple[str, str], float] = {}
        self.observations = 0
        self.published = 0
        self.last_event_ms: int | None = None

    def _price(self, f: dict[bytes, bytes], books: dict[str, dict[str, Any]]) -> tuple[str, int, float] | None:
        sym = f[b"sym"].decode()
        if f[b"kind"] == b"trade":
            return (sym, int(f[b"ts"]), float(f[b"p"])) if not self.use_mid else None
        recv_ns = int(f[b"recv"])
        ts = int(f[b"ts"]) if b"ts" in f else recv_ns // 1_000_000
        bid, ask = f[b"b"].decode(), f[b"a"].decode()
        books[sym] = {
            "symbol": sym, "bid": bid, "bid_qty": f[b"bq"].decode(), "ask": ask, "ask_qty": f[b"aq"].decode(),
            "update_id": int(f[b"id"]), "recv_ns": recv_ns, "ts": ts,
        }
        if self.use_mid:
            return sym, ts, float((Decimal(bid) + Decimal(ask)) / 2)
        return None

    def __call__(self, entries: list[Entry]) -> None:
        books: dict[str, dict[str, Any]] = {}
        out: list[dict[str, str]] = []
        for _, f in entries:
            try:
                tick = self._price(f, books)
            except (KeyError, ValueError):
                continue
            if tick is None:
                continue
            sym, ts, price = tick
            self.last_price[sym] = price
            self.last_event_ms = ts
            for pair in self.legs.get(sym, ()):
                y_sym, x_sym = pair
                if y_sym not in self.last_price or x_sym not in self.last_price:
                    continue
                y, x = self.last_price[y_sym], self.last_price[x_sym]
                metrics = self.models[pair].update(ts, y, x)
                self.observations += 1
                if ts - self.last_published_ms.get(pair, float("-inf")) >= self.min_gap_ms:
                    self.last_published_ms[pair] = ts
                    out.append(self._entry(pair, ts, y, x, metrics))
        pipe = self.r.pipeline(transaction=False)
        for fields in out:
            pipe.xadd(keys.ANALYTICS_STREAM, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        for sym, book in books.items():
            pipe.set(keys.latest_book_key(sym), json.dumps(book))
        pipe.execute()
        self.published += len(out)

    @staticmethod
    def _entry(pair: tuple[str, str], ts: int, y: float, x: float, metrics: dict[str, float]) -> dict[str, str]:
        fields = {"v": SCHEMA_VERSION, "pair": "/".join(pair), "ts": str(ts), "y": repr(y), "x": repr(x)}
        for name, value in metrics.items():
            if value is not None and value == value:  # drop None and NaN: absent until warm
                fields[name] = repr(float(value))
        return fields
