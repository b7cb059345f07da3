"""The candle consumer group: trades from the tick stream -> exact candles in DuckDB, newest candle to Redis."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any, TypeVar

import polars as pl
import redis

from qs_common import codec, keys
from qs_common.status import now_ms
from worker.candles import eight_places, trades_frame, vwap_text
from worker.consumer import AnyEntry, Rejected
from worker.store import CandleStore
from worker.trade_checks import amount_problems, candle_sum_problem, id_problem, symbol_problem, time_problem

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600
T = TypeVar("T")


def candle_json(row: dict[str, Any]) -> dict[str, Any]:
    """A merged candle row -> the API's JSON candle (decimals as exact text, 8 places)."""
    volume: Decimal = row["volume"]
    quote: Decimal = row["quote_volume"]
    return {
        "symbol": row["symbol"], "interval": row["interval"], "open_time": row["open_time"],
        "open": str(row["open"]), "high": str(row["high"]), "low": str(row["low"]), "close": str(row["close"]),
        "volume": str(volume), "quote_volume": eight_places(quote), "trades": row["trades"],
        "taker_buy_volume": str(row["taker_buy_volume"]),
        "taker_buy_quote_volume": eight_places(row["taker_buy_quote_volume"]),
        "vwap": vwap_text(quote, volume),
        "close_time": row["close_time"], "source": row["source"],
    }


def _pick(column: list[T], keep: list[int]) -> list[T]:
    return [column[i] for i in keep]


class CandleHandler:
    """Handler for `GroupConsumer` (dict or flat fields): effects are durable (DuckDB commit) when it returns."""

    def __init__(self, store: CandleStore, r: redis.Redis, retention_ms: int) -> None:
        self.store = store
        self.r = r
        self.retention_ms = retention_ms
        self.latest_open: dict[tuple[str, str], int] = {}
        self.trades = 0
        self.bad_entries = 0
        self.last_event_ms: int | None = None
        self._last_prune = time.monotonic()
        self._symbols_ok: set[str] = set()

    def status(self) -> dict[str, Any]:
        """Counters for the consumer's status record (`status:worker-candles`)."""
        return {"last_event_ms": self.last_event_ms, "trades": self.trades, "bad_entries": self.bad_entries}

    def __call__(self, entries: list[AnyEntry]) -> list[Rejected]:
        """Store the batch's trades; return the entries that cannot be stored, with the reason (quarantined)."""
        batch = codec.decode_batch(entries, books=False)
        rejected: list[Rejected] = batch.undecodable
        t = batch.trades
        dropped: set[int] = set()
        for i, (trade_id, ts, sym) in enumerate(zip(t.ids, t.times, t.symbols, strict=True)):
            problem = id_problem(trade_id) or time_problem(ts)
            if problem is None and sym not in self._symbols_ok:
                problem = symbol_problem(sym)
                if problem is None:
                    self._symbols_ok.add(sym)
            if problem is not None:
                dropped.add(i)
                rejected.append((t.entry_ids[i], problem))
        entry_ids, symbols, ids, prices = t.entry_ids, t.symbols, t.ids, t.prices
        qtys, times, makers = t.qtys, t.times, t.makers
        if dropped:
            keep = [i for i in range(len(t)) if i not in dropped]
            entry_ids, symbols, ids, prices = _pick(entry_ids, keep), _pick(symbols, keep), _pick(ids, keep), \
                _pick(prices, keep)
            qtys, times, makers = _pick(qtys, keep), _pick(times, keep), _pick(makers, keep)
        if ids:
            problems = amount_problems(prices, qtys)
            if any(problems):
                keep = [i for i, why in enumerate(problems) if why is None]
                rejected.extend((entry_ids[i], why) for i, why in enumerate(problems) if why is not None)
                symbols, ids, prices = _pick(symbols, keep), _pick(ids, keep), _pick(prices, keep)
                qtys, times, makers = _pick(qtys, keep), _pick(times, keep), _pick(makers, keep)
        if ids:
            self._store(symbols, ids, prices, qtys, times, makers)
        self.bad_entries += len(rejected)  # after the store: a batch that fails is counted when it passes
        return rejected

    def _store(
        self, symbols: list[str], ids: list[int], prices: list[str], qtys: list[str], times: list[int],
        makers: list[bool],
    ) -> None:
        frame = trades_frame(symbols, ids, prices, qtys, times, makers)
        overflow = candle_sum_problem(frame)
        if overflow is not None:  # the consumer bisects the batch and quarantines the entry that fails alone
            raise OverflowError(overflow)
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
