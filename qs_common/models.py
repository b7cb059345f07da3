"""Wire schemas (Binance's one-letter names, kept at the edge) and the domain ticks they become.

Prices and quantities stay decimal strings exactly as Binance sent them, so nothing is rounded
on the way to the candles; `decimal.Decimal(text)` gives the exact value where arithmetic needs it.
Unknown fields are ignored and enum-like fields are plain strings, so Binance can add either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# ASCII digits only (`\d` also takes Arabic-Indic and other Unicode digits). At most 8 decimal places, as
# candles store DECIMAL(38, 8) exactly; more only when the extra places are zeros, so nothing is ever cut.
# 20 integer digits keep a price or quantity below 10**20, far inside DECIMAL(38, 8).
DecimalText = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}(\.[0-9]{1,8}0{0,10})?$")]
SymbolText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{2,30}$")]
# Ids and times are stored as BIGINT: positive and within int64, or the candle consumer cannot store them.
PositiveInt64 = Annotated[int, Field(gt=0, lt=2**63)]

# strict: Binance sends numbers as numbers and flags as booleans; "1", 1.0 or "true" is a broken frame.
_WIRE = ConfigDict(extra="ignore", frozen=True, strict=True)


class TradeMsg(BaseModel):
    """`<symbol>@trade` payload.

    {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
     "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    `m` true: the buyer was the maker, so the taker sold. USDⓈ-M futures adds `X` (MARKET, ...).
    """

    model_config = _WIRE
    e: str
    E: PositiveInt64
    s: SymbolText
    t: PositiveInt64
    p: DecimalText
    q: DecimalText
    T: PositiveInt64
    m: bool
    X: str | None = None


class BookTickerMsg(BaseModel):
    """`<symbol>@bookTicker` payload.

    {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}
    Spot sends no event time (receive time is its only clock); USDⓈ-M futures adds `e`, `E` and `T`.
    """

    model_config = _WIRE
    u: PositiveInt64
    s: SymbolText
    b: DecimalText
    B: DecimalText
    a: DecimalText
    A: DecimalText
    E: PositiveInt64 | None = None
    T: PositiveInt64 | None = None


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


def trade_from_msg(msg: TradeMsg, recv_ns: int) -> Trade:
    return Trade(msg.s.upper(), msg.t, msg.p, msg.q, msg.T, msg.E, recv_ns, msg.m)


def book_from_msg(msg: BookTickerMsg, recv_ns: int) -> BookTicker:
    return BookTicker(msg.s.upper(), msg.u, msg.b, msg.B, msg.a, msg.A, msg.E, recv_ns)
