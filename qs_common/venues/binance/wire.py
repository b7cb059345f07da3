"""Binance's payloads as sent (Binance's one-letter names kept at this edge) and their conversion into the domain.

Prices and quantities stay decimal strings exactly as Binance sent them (`DecimalText`), so nothing is rounded on
the way to the candles. Unknown fields are ignored and enum-like fields are plain strings, so Binance can add
either. Strict: Binance sends numbers as numbers and flags as booleans; "1", 1.0 or "true" is a broken frame.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.models import BookTicker, DecimalText, PositiveInt64, SymbolText, Trade
from qs_common.venues.binance.config import TRADE_STREAM, stream_name

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


# Combined-stream frames: {"stream":"<symbol>@<kind>","data":<payload>}. Lax on the envelope itself.
class TradeFrame(BaseModel):
    stream: str
    data: TradeMsg


class BookTickerFrame(BaseModel):
    stream: str
    data: BookTickerMsg


def trade_from_msg(msg: TradeMsg, recv_ns: int) -> Trade:
    return Trade(msg.s.upper(), msg.t, msg.p, msg.q, msg.T, msg.E, recv_ns, msg.m)


def book_from_msg(msg: BookTickerMsg, recv_ns: int) -> BookTicker:
    return BookTicker(msg.s.upper(), msg.u, msg.b, msg.B, msg.a, msg.A, msg.E, recv_ns)


# A level is a 2-element array on the wire; strict mode would take only a Python tuple from `json.loads` output,
# so the pair itself is lax (the texts inside stay strict decimal text).
WireLevel = Annotated[tuple[DecimalText, DecimalText], Strict(False)]


class DepthUpdateMsg(BaseModel):
    """`<symbol>@depth@100ms` payload (spot).

    {"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,
     "b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"]]}
    U is the first update id in the event, u the final one; levels carry absolute quantities.
    """

    model_config = _WIRE
    e: str
    E: PositiveInt64
    s: SymbolText
    U: PositiveInt64
    u: PositiveInt64
    b: list[WireLevel]
    a: list[WireLevel]


class FuturesDepthUpdateMsg(DepthUpdateMsg):
    """`<symbol>@depth@100ms` payload (USDⓈ-M futures): the spot fields plus `pu` and the transaction time `T`.

    {"e":"depthUpdate","E":1723161255308,"T":1723161255305,"s":"BTCUSDT","U":157,"u":160,"pu":149,
     "b":[["61837.6","1.234"]],"a":[]}
    `pu` is the final update id of the previous event on this stream: continuity is pu == previous u.
    """

    pu: PositiveInt64
    T: PositiveInt64 | None = None


class DepthSnapshotMsg(BaseModel):
    """REST `GET /api/v3/depth` (spot) or `GET /fapi/v1/depth` (USDⓈ-M) answer.

    {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...],"asks":[...]}
    USDⓈ-M adds the message time `E` and transaction time `T`.
    """

    model_config = _WIRE
    lastUpdateId: PositiveInt64
    bids: list[WireLevel]
    asks: list[WireLevel]
    E: PositiveInt64 | None = None
    T: PositiveInt64 | None = None


class DepthFrame(BaseModel):
    stream: str
    data: DepthUpdateMsg


class FuturesDepthFrame(BaseModel):
    stream: str
    data: FuturesDepthUpdateMsg


class SnapshotFrame(BaseModel):
    """A recording's REST snapshot line, wrapped by the replay source as `<symbol>@depthSnapshot`."""

    stream: str
    data: DepthSnapshotMsg


def diff_from_msg(msg: DepthUpdateMsg, recv_ns: int) -> DepthDiff:
    pu = msg.pu if isinstance(msg, FuturesDepthUpdateMsg) else None
    return DepthDiff(msg.s.upper(), msg.U, msg.u, pu, tuple(msg.b), tuple(msg.a), msg.E, recv_ns)


def snapshot_from_msg(msg: DepthSnapshotMsg, symbol: str) -> DepthSnapshot:
    """The REST answer names no symbol: the caller knows which one it asked for."""
    return DepthSnapshot(symbol.upper(), msg.lastUpdateId, tuple(msg.bids), tuple(msg.asks), msg.E)


def trade_frame(symbol: str, trade_id: int, price: str, qty: str, ts_ms: int, buyer_is_maker: bool) -> bytes:
    """A combined-stream `@trade` frame as Binance sends it, for sources that hold trades in another shape (tick
    files): the one parser then validates them with the same rules as live frames."""
    data = {"e": "trade", "E": ts_ms, "s": symbol, "t": trade_id, "p": price, "q": qty, "T": ts_ms,
            "m": buyer_is_maker}
    return json.dumps({"stream": stream_name(symbol, TRADE_STREAM), "data": data}, separators=(",", ":")).encode()


class MethodReply(BaseModel):
    """The venue's answer to a request on the stream connection, matched to it by `id`.

    {"result":null,"id":7} (SUBSCRIBE, UNSUBSCRIBE: done), {"result":["btcusdt@trade"],"id":8} (LIST_SUBSCRIPTIONS),
    {"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":9} (refused; `id` null when it was unreadable).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: int | None = None
    result: list[str] | None = None
    error: dict[str, object] | None = None

    @property
    def error_text(self) -> str:
        if self.error is None:
            return ""
        return f"code {self.error.get('code')}: {str(self.error.get('msg'))[:200]}"


_STREAM_FRAME_PREFIX = b'{"stream":'


def method_reply(raw: bytes) -> MethodReply | None:
    """A reply to one of our requests, or None for anything else (stream frames first: one prefix test)."""
    if raw.startswith(_STREAM_FRAME_PREFIX) or b'"id"' not in raw:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or "id" not in doc or not ("result" in doc or "error" in doc):
        return None
    try:
        return MethodReply.model_validate(doc)
    except ValueError:
        return None


def method_request(method: str, request_id: int, params: list[str] | None = None) -> str:
    body: dict[str, object] = {"method": method}
    if params is not None:
        body["params"] = params
    body["id"] = request_id
    return json.dumps(body, separators=(",", ":"))
