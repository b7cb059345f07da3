"""Trades -> partial OHLCV candles at 1s, 1m and 5m, with Polars, in exact decimal arithmetic.

A batch of trades gives partial candles; partials of the same (symbol, interval, open time) from other
batches merge associatively (open from the lowest trade id, close from the highest, sums add), so a candle
built across several batches equals one built at once. Prices and quantities are Decimal(38, 8) as Binance
sends them; quote volume is Decimal(38, 16), so every p·q is exact before it is summed.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

import polars as pl

from qs_common import intervals

PRICE = pl.Decimal(38, 8)
QUOTE = pl.Decimal(38, 16)

STORED_INTERVALS = intervals.STORED_MS
DERIVED_INTERVALS = intervals.DERIVED_MS
ALL_INTERVALS = intervals.INTERVAL_MS

# 60 digits: the default 28 cannot hold a quote volume near 10**22 to 8 places. Ties away from zero (all values
# here are >= 0): DuckDB's round() on decimals, so a stored candle's text and the live one's agree.
_CTX = Context(prec=60, rounding=ROUND_HALF_UP)
_EIGHT = Decimal("1e-8")


def eight_places(d: Decimal) -> str:
    """A decimal as the API's text: 8 places, ties away from zero, never exponent notation."""
    return format(d.quantize(_EIGHT, context=_CTX), "f")


def vwap_text(quote_volume: Decimal | None, volume: Decimal) -> str | None:
    """The one VWAP of a candle (the API's, live and stored): quote volume / volume, exact, to 8 places.

    None without volume or with an unknown quote volume (an imported candle). The dashboard's float VWAP
    (dashboard/features.py) is the same ratio of these texts, for charts."""
    if not volume or quote_volume is None:
        return None
    return eight_places(_CTX.divide(quote_volume, volume))


CANDLE_COLUMNS = [
    "symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id", "close_time",
]


def trades_frame(
    symbols: list[str], trade_ids: list[int], prices: list[str], qtys: list[str], times_ms: list[int],
    buyer_is_maker: list[bool],
) -> pl.DataFrame:
    """Column lists (prices as decimal text) -> a typed trades frame; exact decimal parse.

    Text that is not a decimal becomes null; callers drop and count such rows.
    """
    return pl.DataFrame(
        {
            "symbol": symbols, "trade_id": trade_ids, "price": prices, "qty": qtys,
            "trade_time_ms": times_ms, "buyer_is_maker": buyer_is_maker,
        },
        schema_overrides={"trade_id": pl.Int64, "trade_time_ms": pl.Int64},
    ).with_columns(pl.col("price").cast(PRICE, strict=False), pl.col("qty").cast(PRICE, strict=False))


def partial_candles(trades: pl.DataFrame, intervals: dict[str, int] = STORED_INTERVALS) -> pl.DataFrame:
    """Aggregate trades into one partial candle per (symbol, interval, open_time)."""
    if trades.is_empty():
        return pl.DataFrame(schema=_candle_schema())
    t = trades.with_columns(
        quote=pl.col("price").cast(QUOTE) * pl.col("qty"),
        taker_buy=~pl.col("buyer_is_maker"),
    )
    parts = []
    for name, ms in intervals.items():
        parts.append(
            t.with_columns(open_time=(pl.col("trade_time_ms") // ms) * ms, interval=pl.lit(name))
            .group_by("symbol", "interval", "open_time")
            .agg(
                open=pl.col("price").sort_by("trade_id").first(),
                high=pl.col("price").max(),
                low=pl.col("price").min(),
                close=pl.col("price").sort_by("trade_id").last(),
                volume=pl.col("qty").sum(),
                quote_volume=pl.col("quote").sum(),
                trades=pl.len().cast(pl.Int64),
                taker_buy_volume=pl.col("qty").filter(pl.col("taker_buy")).sum(),
                taker_buy_quote_volume=pl.col("quote").filter(pl.col("taker_buy")).sum(),
                first_trade_id=pl.col("trade_id").min(),
                last_trade_id=pl.col("trade_id").max(),
            )
            .with_columns(close_time=pl.col("open_time") + (ms - 1))
        )
    out = pl.concat(parts).with_columns(
        pl.col("volume", "taker_buy_volume").cast(PRICE).fill_null(0),
        pl.col("quote_volume", "taker_buy_quote_volume").cast(QUOTE).fill_null(0),
    )
    return out.select(CANDLE_COLUMNS)


def _candle_schema() -> dict[str, pl.DataType]:
    return {
        "symbol": pl.String(), "interval": pl.String(), "open_time": pl.Int64(), "open": PRICE, "high": PRICE,
        "low": PRICE, "close": PRICE, "volume": PRICE, "quote_volume": QUOTE, "trades": pl.Int64(),
        "taker_buy_volume": PRICE, "taker_buy_quote_volume": QUOTE, "first_trade_id": pl.Int64(),
        "last_trade_id": pl.Int64(), "close_time": pl.Int64(),
    }
