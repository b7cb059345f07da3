"""The worker's order books (issue 11) as the dashboard reads them: `book:depth:{SYMBOL}` (top levels, exact
decimal text) and `book:metrics:{SYMBOL}`, several symbols in one round trip each."""

from __future__ import annotations

from typing import Any

from dashboard import data
from qs_common import keys
from qs_common.redis_client import get_many


def _many(key_of: Any, symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    if not symbols:
        return {}
    raws = data.redis_call(get_many, data.rds(), [key_of(s) for s in symbols])
    return {s: data._loads(raw) for s, raw in zip(symbols, raws, strict=True)}


def order_books(symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    """symbol -> {symbol, last_update_id, event_time, stale, bids, asks} or None (no book role output yet)."""
    return _many(keys.book_depth_key, symbols)


def book_metrics(symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    """symbol -> {mid, microprice, spread_bps, imbalance_*, depth_*bps_*, cost_*_bps, stale, ...} or None."""
    return _many(keys.book_metrics_key, symbols)
