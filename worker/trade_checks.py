"""What the candle store can hold exactly, checked before a trade reaches DuckDB (defence in depth).

Ingest validates every tick, but entries can also come from older ingest versions, other tools or a future
bug; one that DuckDB cannot hold would fail its whole batch. The bounds are the store's: trade ids and times
are BIGINT (times also end by the year 9999, so a candle's close time never overflows), prices and quantities
DECIMAL(38, 8) (below 10**30, at most 8 places, nothing cut), and p·q must fit DECIMAL(38, 16) (below 10**22).
Vectorised (Polars) over the batch: this is the hot path.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from qs_common.symbols import is_symbol

INT64_MAX = 2**63 - 1
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_QUOTE = Decimal(10) ** 22
# Plain ASCII decimal text: at most 30 significant integer digits, 8 places (more only as trailing zeros).
DECIMAL_TEXT = r"^0*[0-9]{1,30}(\.[0-9]{1,8}0*)?$"
_NEAR_QUOTE_BOUND = 0.99e22  # float products above this are checked exactly


def id_problem(trade_id: int) -> str | None:
    return None if 0 < trade_id <= INT64_MAX else f"trade id {trade_id} outside 1..2^63-1"


def time_problem(ts_ms: int) -> str | None:
    return None if 0 < ts_ms <= MAX_TIME_MS else f"trade time {ts_ms} ms outside 1..{MAX_TIME_MS} (year 9999)"


def symbol_problem(symbol: str) -> str | None:
    return None if is_symbol(symbol) else f"symbol {symbol[:40]!r} is not 2-30 capital letters or digits"


def _text_reason(name: str) -> pl.Expr:
    return pl.format(f"{name} {{}} is not a plain decimal (at most 30 integer digits, 8 places)",
                     pl.col(name).str.slice(0, 40))


def amount_problems(prices: list[str], qtys: list[str]) -> list[str | None]:
    """One reason (or None) per trade: decimal text, price > 0, quantity > 0, p·q below 10**22."""
    f = pl.DataFrame({"price": prices, "qty": qtys}, schema={"price": pl.String, "qty": pl.String})
    p = pl.col("price").cast(pl.Float64, strict=False)
    q = pl.col("qty").cast(pl.Float64, strict=False)
    reason = (
        pl.when(~pl.col("price").str.contains(DECIMAL_TEXT)).then(_text_reason("price"))
        .when(~pl.col("qty").str.contains(DECIMAL_TEXT)).then(_text_reason("qty"))
        .when(p <= 0).then(pl.format("price {} is not > 0", pl.col("price")))
        .when(q <= 0).then(pl.format("qty {} is not > 0", pl.col("qty")))
        .when(p * q >= _NEAR_QUOTE_BOUND).then(pl.lit("near"))
        .otherwise(None)
    )
    out: list[str | None] = f.select(reason.alias("r"))["r"].to_list()
    for i, r in enumerate(out):
        if r == "near":  # rare: decide exactly, floats only said it is close
            quote = Decimal(prices[i]) * Decimal(qtys[i])
            out[i] = f"price x qty = {quote} is not below 10^22 (DECIMAL(38,16))" if quote >= MAX_QUOTE else None
    return out


def candle_sum_problem(trades: pl.DataFrame) -> str | None:
    """Why this batch's candles would overflow their columns, or None.

    Every trade can fit while their sum in one candle does not (quote volume DECIMAL(38, 16) < 10**22, volume
    DECIMAL(38, 8) < 10**30), and Polars wraps such a decimal sum around silently. The 5m candle holds the
    largest sums. Floats with a margin: a false alarm only makes the consumer bisect the batch, never loses a
    trade; a real overflow then fails for the entry that causes it alone (DuckDB checks its own additions).
    """
    if trades.is_empty():
        return None
    qty = pl.col("qty").cast(pl.Float64)
    sums = trades.group_by("symbol", pl.col("trade_time_ms") // 300_000).agg(
        quote=(pl.col("price").cast(pl.Float64) * qty).sum(), volume=qty.sum()
    )
    worst = sums.select(pl.col("quote").max(), pl.col("volume").max()).row(0)
    if worst[0] >= 0.999e22 or worst[1] >= 0.999e30:
        return f"a candle of this batch would hold quote volume {worst[0]:.4g} / volume {worst[1]:.4g}, " \
               "beyond DECIMAL(38,16) / DECIMAL(38,8)"
    return None
