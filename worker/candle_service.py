"""The candle consumer group: trades from the tick stream -> exact candles in DuckDB, newest candle to Redis."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any

import polars as pl
import redis

from qs_common import keys
from qs_common.status import now_ms
from worker.candles import trades_frame
from worker.consumer import Entry
from worker.store import CandleStore

log = logging.getLogger(__name__)

_EIGHT = Decimal("1e-8")
PRUNE_EVERY_S = 600


def candle_json(row: dict[str, Any]) -> dict[str, Any]:
    """A merged candle row -> the API's JSON candle (decimals as exact text, 8 places)."""
    volume: Decimal = row["volume"]
    quote: Decimal = row["quote_volume"]
    return {
        "symbol": row["symbol"], "interval": row["interval"], "open_time": row["open_time"],
        "open": str(row["open"]), "high": str(row["high"]), "low": str(row["low"]), "close": str(row["close"]),
        "volume": str(volume), "quote_volume": str(quote.quantize(_EIGHT)), "trades": row["trades"],
        "taker_buy_volume": str(row["taker_buy_volume"]),
        "taker_buy_quote_volume": str(row["taker_buy_quote_volume"].quantize(_EIGHT)),
        "vwap": str((quote / volume).quantize(_EIGHT)) if volume else None,
        "close_time": row["close_time"], "source": row["source"],
    }


class CandleHandler:
    """Handler for `GroupConsumer`: effects are durable (DuckDB commit) when it returns."""

    def __init__(self, store: CandleStore, r: redis.Redis, retention_ms: int) -> None:
        self.store = store
        self.r = r
        self.retention_ms = retention_ms
        self.latest_open: dict[tuple[str, str], int] = {}
        self.trades = 0
        self.bad_entries = 0
        self.last_event_ms: int | None = None
        self._last_prune = time.monotonic()

    def __call__(self, entries: list[Entry]) -> None:
        symbols: list[str] = []
        ids: list[int] = []
        prices: list[str] = []
        qtys: list[str] = []
        times: list[int] = []
        makers: list[bool] = []
        for _, f in entries:
            if f.get(b"kind") != b"trade":
                continue
            try:
                row = (f[b"sym"].decode(), int(f[b"id"]), f[b"p"].decode(), f[b"q"].decode(), int(f[b"ts"]),
                       f[b"m"] == b"1")
            except (KeyError, ValueError) as exc:
                # ingest validated every tick; an entry that still fails is counted, not fatal
                self.bad_entries += 1
                log.warning("skipping malformed trade entry: %r", exc)
                continue
            symbols.append(row[0])
            ids.append(row[1])
            prices.append(row[2])
            qtys.append(row[3])
            times.append(row[4])
            makers.append(row[5])
        if not ids:
            return
        frame = trades_frame(symbols, ids, prices, qtys, times, makers)
        valid = frame.filter(pl.col("price").is_not_null() & pl.col("qty").is_not_null())
        if len(valid) < len(frame):
            self.bad_entries += len(frame) - len(valid)
            log.warning("skipping %d trade entries whose price or quantity is not a decimal", len(frame) - len(valid))
            frame = valid
        merged = self.store.apply_trades(frame)
        self.trades += len(ids)
        self.last_event_ms = max(times)
        self._publish_latest(merged)
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            pruned = self.store.prune_trades(self.retention_ms)
            if pruned:
                log.info("pruned %d trades past retention", pruned)

    def _publish_latest(self, merged: pl.DataFrame) -> None:
        if merged.is_empty():
            return
        newest = merged.sort("open_time").group_by("symbol", "interval").last()
        pipe = self.r.pipeline(transaction=False)
        stamp = now_ms()
        for row in newest.iter_rows(named=True):
            key = (row["symbol"], row["interval"])
            if row["open_time"] < self.latest_open.get(key, -1):
                continue
            self.latest_open[key] = row["open_time"]
            body = candle_json(row) | {"updated_ms": stamp}
            pipe.set(keys.forming_candle_key(*key), json.dumps(body))
        pipe.execute()
