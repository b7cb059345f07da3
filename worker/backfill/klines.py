"""Binance kline rows (REST JSON arrays or the public data CSV files) -> typed candle frames.

A kline, as `GET /api/v3/klines` sends it (and the data.binance.vision CSV files store it, no header):

    [1723161300000, "61796.01000000", "61880.00000000", "61795.99000000", "61850.01000000",
     "15.07200000", 1723161359999, "932148.06446410", 1403, "6.62822000", "409957.59142730", "0"]

open time, open, high, low, close, volume, close time, quote asset volume, number of trades,
taker buy base volume, taker buy quote volume, ignore. Prices and volumes stay exact decimal text until
Polars casts them to Decimal(38, 8) (quote volumes Decimal(38, 16)). Times are ms, or µs where Binance
sends µs (its spot data files since 2025, or REST with `X-MBX-TIME-UNIT: MICROSECOND`); both are told
apart by size and turned into ms.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import polars as pl

from qs_common.times import epoch_to_ms
from worker.candles import PRICE, QUOTE

# Epoch ms reach 10^14 only in the year 5138; epoch µs passed 10^14 in 1973.

KLINE_FIELDS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
# The columns `storage` writes (REST rows have no trade ids).
REST_COLUMNS = [
    "symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "close_time",
]


class KlineError(ValueError):
    """A kline row that is not what Binance sends."""


to_ms = epoch_to_ms  # kept as the module's name for it


def _check_row(row: Sequence[object], n: int) -> None:
    if len(row) < 11:
        raise KlineError(f"kline {n}: {len(row)} fields, expected 12")


def klines_frame(symbol: str, interval: str, interval_ms: int, rows: Iterable[Sequence[object]]) -> pl.DataFrame:
    """Kline rows -> one typed frame in `REST_COLUMNS` order, sorted by open time.

    Raises `KlineError` for a row with missing fields, a value that is not a number, or an open/close time
    that does not span exactly one `interval`.
    """
    cols: dict[str, list[object]] = {name: [] for name in KLINE_FIELDS[:11]}
    for n, row in enumerate(rows):
        _check_row(row, n)
        for name, value in zip(KLINE_FIELDS[:11], row, strict=False):
            cols[name].append(value)
    try:
        open_ms = [to_ms(int(str(v))) for v in cols["open_time"]]
        close_ms = [to_ms(int(str(v))) for v in cols["close_time"]]
        trades = [int(str(v)) for v in cols["trades"]]
    except ValueError as exc:
        raise KlineError(f"kline time or trade count is not an integer: {exc}") from None
    for o, c in zip(open_ms, close_ms, strict=True):
        if o % interval_ms or c != o + interval_ms - 1:
            raise KlineError(f"kline {o}..{c} is not one {interval} candle")
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * len(open_ms), "interval": [interval] * len(open_ms), "open_time": open_ms,
            **{k: [str(v) for v in cols[k]] for k in ("open", "high", "low", "close", "volume", "quote_volume")},
            "trades": trades,
            **{k: [str(v) for v in cols[k]] for k in ("taker_buy_volume", "taker_buy_quote_volume")},
            "close_time": close_ms,
        },
        schema_overrides={"open_time": pl.Int64, "trades": pl.Int64, "close_time": pl.Int64},
    )
    typed = frame.with_columns(
        pl.col("open", "high", "low", "close", "volume", "taker_buy_volume").cast(PRICE, strict=False),
        pl.col("quote_volume", "taker_buy_quote_volume").cast(QUOTE, strict=False),
    )
    decimals = ["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
                "taker_buy_quote_volume"]
    bad = typed.select(pl.any_horizontal(pl.col(decimals).is_null())).to_series()
    if bad.any():
        n = int(bad.arg_max() or 0)
        raise KlineError(f"kline {open_ms[n]}: a price or volume is not a decimal")
    return typed.select(REST_COLUMNS).sort("open_time")


def read_kline_csv(text: str) -> list[list[str]]:
    """Rows of a Binance kline CSV file; a header line (Binance.US files have one) is skipped."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and not rows[0][0].strip().lstrip("-").isdigit():
        rows = rows[1:]
    return rows
