"""The domain ticks (what every source becomes and the tick stream carries) and the text rules they obey.

Prices and quantities stay decimal strings exactly as the venue sent them, so nothing is rounded on the way to
the candles; `decimal.Decimal(text)` gives the exact value where arithmetic needs it. A venue's wire schemas
(e.g. `qs_common.venues.binance.wire`) validate with these rules and convert themselves into these ticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

# ASCII digits only (`\d` also takes Arabic-Indic and other Unicode digits). At most 8 decimal places, as
# candles store DECIMAL(38, 8) exactly; more only when the extra places are zeros, so nothing is ever cut.
# 20 integer digits keep a price or quantity below 10**20, far inside DECIMAL(38, 8).
# The patterns are written once here; the schema anchors them and ingest's fast path (`ingest.fastparse`) matches
# them whole (`re.fullmatch`), the same rule.
DECIMAL_PATTERN = r"[0-9]{1,20}(?:\.[0-9]{1,8}0{0,10})?"
SYMBOL_PATTERN = r"[A-Za-z0-9]{2,30}"
DecimalText = Annotated[str, StringConstraints(pattern=f"^{DECIMAL_PATTERN}$")]
SymbolText = Annotated[str, StringConstraints(pattern=f"^{SYMBOL_PATTERN}$")]
# Ids and times are stored as BIGINT: positive and within int64, or the candle consumer cannot store them.
INT64_MAX = 2**63 - 1
PositiveInt64 = Annotated[int, Field(gt=0, lt=INT64_MAX + 1)]


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    trade_id: int
    price: str
    qty: str
    ts_trade_ms: int
    ts_event_ms: int
    recv_ns: int
    buyer_is_maker: bool
    kind: Literal["trade"] = "trade"


@dataclass(frozen=True, slots=True)
class BookTicker:
    symbol: str
    update_id: int
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    ts_event_ms: int | None
    recv_ns: int
    kind: Literal["book"] = "book"


Tick = Trade | BookTicker

