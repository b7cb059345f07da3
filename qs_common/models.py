"""The domain ticks (what every source becomes and the tick stream carries) and the text rules they obey.

Prices and quantities stay decimal strings exactly as the venue sent them, so nothing is rounded on the way to
the candles; `decimal.Decimal(text)` gives the exact value where arithmetic needs it. A venue's wire schemas
(e.g. `qs_common.venues.binance.wire`) validate with these rules and convert themselves into these ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
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


# Frozen, as code relies on (ticks are shared between the parser, the publisher and the gap tracker), but
# built without the frozen dataclass' `__init__`, which sets each field through `object.__setattr__` (a
# global, an attribute and a generic setattr per field: ~1.1 µs a tick, ingest's largest single cost after
# issue 12's client change). Each `__init__` below sets the slots through their own descriptors (~0.6 µs);
# the fields, their order, defaults, keywords, equality, hash, repr and immutability stay the dataclass'
# (tests/unit/test_models.py).


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, symbol: str, trade_id: int, price: str, qty: str, ts_trade_ms: int, ts_event_ms: int,
                 recv_ns: int, buyer_is_maker: bool, kind: Literal["trade"] = "trade") -> None:
        _t_symbol(self, symbol)
        _t_trade_id(self, trade_id)
        _t_price(self, price)
        _t_qty(self, qty)
        _t_ts_trade_ms(self, ts_trade_ms)
        _t_ts_event_ms(self, ts_event_ms)
        _t_recv_ns(self, recv_ns)
        _t_buyer_is_maker(self, buyer_is_maker)
        _t_kind(self, kind)


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
                 ts_event_ms: int | None, recv_ns: int, kind: Literal["book"] = "book") -> None:
        _b_symbol(self, symbol)
        _b_update_id(self, update_id)
        _b_bid(self, bid)
        _b_bid_qty(self, bid_qty)
        _b_ask(self, ask)
        _b_ask_qty(self, ask_qty)
        _b_ts_event_ms(self, ts_event_ms)
        _b_recv_ns(self, recv_ns)
        _b_kind(self, kind)


def _slot_setters(cls: type) -> tuple[Callable[[object, object], None], ...]:
    """Each field's slot descriptor's `__set__`, in field order (slots=True made `cls` a new class: read them
    from the final one)."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


(_t_symbol, _t_trade_id, _t_price, _t_qty, _t_ts_trade_ms, _t_ts_event_ms, _t_recv_ns, _t_buyer_is_maker,
 _t_kind) = _slot_setters(Trade)
(_b_symbol, _b_update_id, _b_bid, _b_bid_qty, _b_ask, _b_ask_qty, _b_ts_event_ms, _b_recv_ns,
 _b_kind) = _slot_setters(BookTicker)


Tick = Trade | BookTicker

