"""Binance klines: the row layout (REST JSON arrays and the data.binance.vision CSV files) and each venue's intervals.

A kline, as `GET /api/v3/klines` sends it (and the data.binance.vision CSV files store it, no header):

    [1723161300000, "61796.01000000", "61880.00000000", "61795.99000000", "61850.01000000",
     "15.07200000", 1723161359999, "932148.06446410", 1403, "6.62822000", "409957.59142730", "0"]

open time, open, high, low, close, volume, close time, quote asset volume, number of trades,
taker buy base volume, taker buy quote volume, ignore. Prices and volumes stay exact decimal text here (the
store types them). Times are ms, or µs where Binance sends µs (its spot data files since 2025, or REST with
`X-MBX-TIME-UNIT: MICROSECOND`); both are told apart by size and turned into ms.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from qs_common.times import epoch_to_ms
from qs_common.venues.binance.config import Venue

KLINE_FIELDS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
DECIMAL_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
                  "taker_buy_quote_volume")
# The kline intervals each venue serves that the worker stores (USDⓈ-M futures have no 1s klines).
VENUE_INTERVALS: dict[Venue, tuple[str, ...]] = {
    Venue.BINANCE_SPOT: ("1s", "1m", "5m"),
    Venue.BINANCE_US: ("1s", "1m", "5m"),
    Venue.BINANCE_USDM: ("1m", "5m"),
}


class KlineError(ValueError):
    """A kline row that is not what Binance sends."""


def kline_columns(interval: str, interval_ms: int, rows: Iterable[Sequence[object]]) -> dict[str, list[object]]:
    """Kline rows -> columns: `open_time`, `close_time` (ms) and `trades` as ints, the decimals as text.

    Raises `KlineError` for a row with missing fields, a time or count that is not an integer, or an open/close
    time that does not span exactly one `interval`. (Whether the decimals are decimals is the caller's typing.)
    """
    cols: dict[str, list[object]] = {name: [] for name in KLINE_FIELDS[:11]}
    for n, row in enumerate(rows):
        if len(row) < 11:
            raise KlineError(f"kline {n}: {len(row)} fields, expected 12")
        for name, value in zip(KLINE_FIELDS[:11], row, strict=False):
            cols[name].append(value)
    try:
        open_ms = [epoch_to_ms(int(str(v))) for v in cols["open_time"]]
        close_ms = [epoch_to_ms(int(str(v))) for v in cols["close_time"]]
        trades = [int(str(v)) for v in cols["trades"]]
    except ValueError as exc:
        raise KlineError(f"kline time or trade count is not an integer: {exc}") from None
    for o, c in zip(open_ms, close_ms, strict=True):
        if o % interval_ms or c != o + interval_ms - 1:
            raise KlineError(f"kline {o}..{c} is not one {interval} candle")
    out: dict[str, list[object]] = {"open_time": list(open_ms), "close_time": list(close_ms), "trades": list(trades)}
    out.update({k: [str(v) for v in cols[k]] for k in DECIMAL_FIELDS})
    return out


def read_kline_csv(text: str) -> list[list[str]]:
    """Rows of a Binance kline CSV file; a header line (Binance.US files have one) is skipped."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and not rows[0][0].strip().lstrip("-").isdigit():
        rows = rows[1:]
    return rows
