"""Binance kline rows (layout in `qs_common.venues.binance.klines`) -> typed candle frames for the store.

Prices and volumes stay exact decimal text until Polars casts them to Decimal(38, 8) (quote volumes
Decimal(38, 16)); a value that is not a decimal fails the whole page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from qs_common.venues.binance.klines import DECIMAL_FIELDS, KlineError, kline_columns
from worker.candles import PRICE, QUOTE

# The columns `storage` writes (REST rows have no trade ids).
REST_COLUMNS = [
    "symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "close_time",
]


def klines_frame(symbol: str, interval: str, interval_ms: int, rows: Iterable[Sequence[object]]) -> pl.DataFrame:
    """Kline rows -> one typed frame in `REST_COLUMNS` order, sorted by open time.

    Raises `KlineError` for a row with missing fields, a value that is not a number, or an open/close time
    that does not span exactly one `interval`.
    """
    cols = kline_columns(interval, interval_ms, rows)
    n = len(cols["open_time"])
    frame = pl.DataFrame(
        {"symbol": [symbol] * n, "interval": [interval] * n, **cols},
        schema_overrides={"open_time": pl.Int64, "trades": pl.Int64, "close_time": pl.Int64,
                          **dict.fromkeys(DECIMAL_FIELDS, pl.String)},
    )
    typed = frame.with_columns(
        pl.col("open", "high", "low", "close", "volume", "taker_buy_volume").cast(PRICE, strict=False),
        pl.col("quote_volume", "taker_buy_quote_volume").cast(QUOTE, strict=False),
    )
    bad = typed.select(pl.any_horizontal(pl.col(list(DECIMAL_FIELDS)).is_null())).to_series()
    if bad.any():
        i = int(bad.arg_max() or 0)
        raise KlineError(f"kline {cols['open_time'][i]}: a price or volume is not a decimal")
    return typed.select(REST_COLUMNS).sort("open_time")
