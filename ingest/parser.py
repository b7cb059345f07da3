"""One parser for every source: raw combined-stream frame text -> a validated tick, a skip, or a dead letter.

Live, replayed and synthetic frames all come through here, so they cannot drift apart. The Pydantic wire
models are the schema (types, int64 ranges, decimal text); `EdgeRules` adds what only the domain knows: the
stream's symbol and the payload's agree, the symbol is subscribed, times lie near the receive time, prices and
quantities are positive and their product fits the stored precision. What fails any of it is rejected with a
reason and a reason class (`Rejected.kind`), never raised.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from ingest import fastparse
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.models import BookTicker, Trade
from qs_common.venues.binance.config import (
    BOOK_TICKER_STREAM,
    DEPTH_KINDS,
    SNAPSHOT_STREAM,
    STREAM_KINDS,
    TRADE_STREAM,
    stream_name,
)
from qs_common.venues.binance.wire import (
    BookTickerFrame,
    BookTickerMsg,
    DepthFrame,
    DepthUpdateMsg,
    FuturesDepthFrame,
    SnapshotFrame,
    TradeFrame,
    TradeMsg,
    book_from_msg,
    diff_from_msg,
    snapshot_from_msg,
    trade_from_msg,
)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed frame we do not publish: depth diffs, REST snapshots, subscription replies."""

    reason: str


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that tells the connection something, such as `serverShutdown`."""

    event: Literal["serverShutdown"]


# Reason classes of rejected frames, counted per class in `status:ingest` (`dead_letter_reasons`).
NOT_JSON = "not-json"
NOT_OBJECT = "not-object"
NOT_STREAM_FRAME = "not-stream-frame"
SCHEMA = "schema"
VENUE_ERROR = "venue-error"
SYMBOL_MISMATCH = "symbol-mismatch"
UNSUBSCRIBED = "unsubscribed"
TIME_RANGE = "time-range"
VALUE_RANGE = "value-range"
EXCEPTION = "exception"  # anything that raised while one frame was handled (see ingest.loop)
BAD_ROW = "bad-row"  # a tick-file row that could not become a frame (see ingest.sources.tick_file)

_REASON_TEXT_LIMIT = 200  # of venue-supplied text quoted in a reason


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame that failed validation: it goes to the dead-letter stream with this reason."""

    reason: str
    kind: str = SCHEMA


class EdgeRules:
    """What the domain requires of a tick beyond its schema. The defaults check no symbol set and no clock."""

    __slots__ = ("depth", "max_skew_ms", "stream_symbols", "symbols", "usdm")

    def __init__(
        self, symbols: frozenset[str] | None = None, max_skew_ms: int | None = None, depth: bool = False,
        usdm: bool = False,
    ) -> None:
        self.depth = depth  # depth diffs and snapshots are parsed and published (DEPTH); else skipped as before
        self.usdm = usdm  # USDⓈ-M depth diffs carry `pu`, which the book's continuity check needs
        self.max_skew_ms = max_skew_ms  # exchange times must lie this close to the receive time; None: no check
        self.set_symbols(symbols)

    def set_symbols(self, symbols: frozenset[str] | None) -> None:
        """The subscribed set (None: any). Ingest calls it again when the live registry adds or removes one."""
        self.symbols = None if symbols is None else frozenset(s.upper() for s in symbols)
        # Binance's stream names of the subscribed symbols -> their symbol: one lookup checks both the
        # subscription and that the payload's symbol is the stream's on the hot path.
        self.stream_symbols = {
            stream_name(s, kind): s for s in self.symbols or () for kind in (*STREAM_KINDS, *DEPTH_KINDS)}


NO_RULES = EdgeRules()

# |p*q| must fit the quote volume's DECIMAL(38, 16): below 10**22.
_MAX_NOTIONAL = Decimal(10) ** 22
_MAX_NOTIONAL_DIGITS = 22


ParseResult = Trade | BookTicker | DepthDiff | DepthSnapshot | Skipped | Control | Rejected

_STREAM_PREFIX = b'{"stream":"'
_TRADE_B, _BOOK_TICKER_B = TRADE_STREAM.encode(), BOOK_TICKER_STREAM.encode()
_DEPTH_KINDS_B = frozenset(k.encode() for k in DEPTH_KINDS)


def _stream_kind(raw: bytes) -> bytes | None:
    """Fast path: read the stream suffix (`trade`, `bookTicker`, ...) from the frame's first bytes.

    Binance always writes `{"stream":"<sym>@<kind>","data":...}`; anything else takes the slow path.
    """
    if not raw.startswith(_STREAM_PREFIX):
        return None
    end = raw.find(b'"', len(_STREAM_PREFIX))
    at = raw.find(b"@", len(_STREAM_PREFIX), end)
    if end < 0 or at < 0:
        return None
    return raw[at + 1 : end]


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    return f"{loc}: {e['msg']}" if loc else e["msg"]


def parse_frame(recv_ns: int, raw: bytes | str, rules: EdgeRules = NO_RULES) -> ParseResult:
    """Parse one frame as received. Never raises on bad input.

    Trades and book tickers the fast decoder accepts skip the Pydantic validation (it accepts only what the
    schema accepts, with the same values); everything else, every rejection included, is `parse_frame_schema`'s.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    kind = _stream_kind(raw)
    if kind == _TRADE_B:
        tf = fastparse.trade_frame(raw)
        if tf is not None:
            t = tf.data
            return _check_trade(tf.stream, t, recv_ns, rules) or Trade(
                t.s.upper(), t.t, t.p, t.q, t.T, t.E, recv_ns, t.m)
    elif kind == _BOOK_TICKER_B:
        bf = fastparse.book_frame(raw)
        if bf is not None:
            b = bf.data
            return _check_book(bf.stream, b, recv_ns, rules) or BookTicker(
                b.s.upper(), b.u, b.b, b.B, b.a, b.A, b.E, recv_ns)
    return _parse_schema(recv_ns, raw, kind, rules)


class BookSink(Protocol):
    """Where `take_frame` hands a book ticker's values: `(symbol, update_id, bid, bid_qty, ask, ask_qty, ts_event_ms,
    recv_ns)`, BookTicker's fields in order (ingest.publisher.Publisher.add_book)."""

    def __call__(self, symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
                 ts_event_ms: int | None, recv_ns: int, /) -> None: ...


def take_frame(recv_ns: int, raw: bytes | str, rules: EdgeRules, add_book: BookSink) -> ParseResult | None:
    """`parse_frame` for ingest's hot path: a book ticker the fast decoder accepts and the edge rules pass goes to
    `add_book` as its values and None is returned, so three frames in four reach the XADD text without a
    BookTicker built in between; every other frame gives `parse_frame`'s result (the same decoder, rules and
    reasons: tests/unit/test_parser_take.py)."""
    if type(raw) is not bytes:  # a source's text frame (str): the general way
        return parse_frame(recv_ns, raw, rules)
    kind = _stream_kind(raw)
    if kind == _BOOK_TICKER_B:
        bf = fastparse.book_frame(raw)
        if bf is not None:
            b = bf.data
            # `_check_book`'s passing case, inline: a subscribed stream carrying its own symbol as Binance writes
            # it (the registry's upper case, so `upper()` would give the same), no times (spot), every value
            # positive. Anything else, futures' times included, is `_check_book`'s.
            symbol = b.s
            if (rules.stream_symbols.get(bf.stream) == symbol and b.E is None and b.T is None
                    and b.b.strip("0.") and b.B.strip("0.") and b.a.strip("0.") and b.A.strip("0.")):
                add_book(symbol, b.u, b.b, b.B, b.a, b.A, None, recv_ns)
                return None
            rejected = _check_book(bf.stream, b, recv_ns, rules)
            if rejected is not None:
                return rejected
            add_book(symbol.upper(), b.u, b.b, b.B, b.a, b.A, b.E, recv_ns)
            return None
    elif kind == _TRADE_B:
        tf = fastparse.trade_frame(raw)
        if tf is not None:
            t = tf.data
            return _check_trade(tf.stream, t, recv_ns, rules) or Trade(
                t.s.upper(), t.t, t.p, t.q, t.T, t.E, recv_ns, t.m)
    return _parse_schema(recv_ns, raw, kind, rules)


def parse_frame_schema(recv_ns: int, raw: bytes | str, rules: EdgeRules = NO_RULES) -> ParseResult:
    """`parse_frame` without the fast decoder: every frame validated by the Pydantic wire models (the reference)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return _parse_schema(recv_ns, raw, _stream_kind(raw), rules)


def _parse_schema(recv_ns: int, raw: bytes, kind: bytes | None, rules: EdgeRules) -> ParseResult:
    try:
        if kind == _TRADE_B:
            env = TradeFrame.model_validate_json(raw)
            return _check_trade(env.stream, env.data, recv_ns, rules) or trade_from_msg(env.data, recv_ns)
        if kind == _BOOK_TICKER_B:
            benv = BookTickerFrame.model_validate_json(raw)
            return _check_book(benv.stream, benv.data, recv_ns, rules) or book_from_msg(benv.data, recv_ns)
    except ValidationError as err:
        return Rejected(f"invalid {(kind or b'').decode(errors='replace')} frame: {_first_error(err)}")
    if kind in _DEPTH_KINDS_B and rules.depth:
        return _parse_depth(kind.decode(), raw, recv_ns, rules)  # type: ignore[union-attr]
    return _parse_slow(recv_ns, raw, rules)


def _parse_depth(kind: str, raw: bytes, recv_ns: int, rules: EdgeRules) -> ParseResult:
    """A depth diff or a replay's wrapped REST snapshot (DEPTH on): validated like a trade at the edge."""
    try:
        if kind == SNAPSHOT_STREAM:
            snap = SnapshotFrame.model_validate_json(raw)
            symbol = snap.stream.partition("@")[0].upper()
            if rules.symbols is not None and symbol not in rules.symbols:
                return Rejected(f"unsubscribed symbol {symbol}", UNSUBSCRIBED)
            return _check_levels(snap.data.bids, snap.data.asks) or snapshot_from_msg(snap.data, symbol)
        frame = (FuturesDepthFrame if rules.usdm else DepthFrame).model_validate_json(raw)
    except ValidationError as err:
        return Rejected(f"invalid {kind} frame: {_first_error(err)}")
    msg: DepthUpdateMsg = frame.data
    rejected = (_check_symbol(frame.stream, msg.s.upper(), rules)
                or _check_times((("event time E", msg.E),), recv_ns, rules) or _check_levels(msg.b, msg.a))
    if rejected is not None:
        return rejected
    if msg.u < msg.U:
        return Rejected(f"first update id U={msg.U} is after the final one u={msg.u}", VALUE_RANGE)
    return diff_from_msg(msg, recv_ns)


def _check_levels(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Rejected | None:
    # A quantity 0 removes a level; a price 0 is no level at all.
    for side, levels in (("bid", bids), ("ask", asks)):
        for price, _ in levels:
            if not price.strip("0."):
                return Rejected(f"{side} level price {price} is not positive", VALUE_RANGE)
    return None


def _parse_slow(recv_ns: int, raw: bytes, rules: EdgeRules) -> ParseResult:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}", NOT_JSON)
    except RecursionError:
        return Rejected("not JSON: nested too deeply", NOT_JSON)
    if not isinstance(doc, dict):
        return Rejected("not a JSON object", NOT_OBJECT)
    data = doc.get("data", doc)
    if isinstance(data, dict) and data.get("e") == "serverShutdown":
        return Control("serverShutdown")
    stream = doc.get("stream")
    if isinstance(stream, str) and "data" in doc:
        if (bad := _bad_stream_name(stream)) is not None:
            return Rejected(f"invalid stream name {_clip(stream)!r}: {bad}")
        kind = stream.partition("@")[2]
        if kind in DEPTH_KINDS and rules.depth:
            return _parse_depth(kind, raw, recv_ns, rules)
        try:
            if kind == TRADE_STREAM:
                t = TradeFrame.model_validate(doc).data
                return _check_trade(stream, t, recv_ns, rules) or trade_from_msg(t, recv_ns)
            if kind == BOOK_TICKER_STREAM:
                b = BookTickerFrame.model_validate(doc).data
                return _check_book(stream, b, recv_ns, rules) or book_from_msg(b, recv_ns)
        except ValidationError as err:
            return Rejected(f"invalid {_clip(kind)} frame: {_first_error(err)}")
        return Skipped(f"stream {_clip(kind or stream)!r} not published")
    return _not_a_stream_frame(doc)


def _bad_stream_name(stream: str) -> str | None:
    """Why `stream` cannot be any stream's name, or None. A name that can be is skipped when not published.

    A lone surrogate (an escaped `\\ud800`, or the bytes ED A0 80 that `json.loads` lets through) is no character
    at all; control, format, private-use and unassigned code points and whitespace are in no name Binance sends
    (its names travel in a URL path). Non-ASCII letters are not refused: a venue may list such a symbol, and
    its streams, not subscribed, are skipped like any other.
    """
    if not stream:
        return "empty"
    if stream.isprintable() and " " not in stream:  # the usual case, in one pass
        return None
    at, char = next((i, c) for i, c in enumerate(stream) if not c.isprintable() or c == " ")
    what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else f"{unicodedata.category(char)} character"
    return f"{what} U+{ord(char):04X} at {at}"


def _not_a_stream_frame(doc: dict[str, Any]) -> ParseResult:
    """A JSON object without `stream` and `data`: a reply the venue may send on the same socket, or garbage."""
    if "lastUpdateId" in doc and "bids" in doc:
        return Skipped("REST depth snapshot")
    if "result" in doc and "id" in doc:
        return Skipped("subscription reply")
    if "code" in doc and "msg" in doc:
        return Rejected(f"venue error {_clip(doc.get('code'))}: {_clip(doc.get('msg'))}", VENUE_ERROR)
    return Rejected("not a combined-stream frame (no 'stream' and 'data')", NOT_STREAM_FRAME)


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= _REASON_TEXT_LIMIT else text[:_REASON_TEXT_LIMIT] + "..."


def _check_symbol(stream: str, symbol: str, rules: EdgeRules) -> Rejected | None:
    if rules.stream_symbols.get(stream) == symbol:  # the usual case: a subscribed stream, its own symbol
        return None
    # A `btcusdt@trade` frame carrying ETHUSDT would write a BTC price into ETH's candle.
    if stream.partition("@")[0].upper() != symbol:
        return Rejected(f"symbol mismatch: stream {_clip(stream)!r} carries {symbol}", SYMBOL_MISMATCH)
    if rules.symbols is not None and symbol not in rules.symbols:
        return Rejected(f"unsubscribed symbol {symbol}", UNSUBSCRIBED)
    return None


def _check_times(times: tuple[tuple[str, int | None], ...], recv_ns: int, rules: EdgeRules) -> Rejected | None:
    if rules.max_skew_ms is None:
        return None
    recv_ms = recv_ns // 1_000_000
    for name, ts_ms in times:
        if ts_ms is not None and abs(ts_ms - recv_ms) > rules.max_skew_ms:
            return Rejected(f"{name}={ts_ms} ms is {(ts_ms - recv_ms) / 1000:.0f} s from the receive time (at "
                            f"most {rules.max_skew_ms / 1000:.0f} s, TICK_MAX_SKEW_S)", TIME_RANGE)
    return None


def _positive(text: str) -> bool:
    # the schema allows only digits and one dot: any digit other than 0 makes it positive
    return text.strip("0.") != ""


def _notional_too_big(price: str, qty: str) -> bool:
    # digits before the dot (leading zeros included, which only sends more cases to the exact check)
    int_digits = (price.find(".") % (len(price) + 1)) + (qty.find(".") % (len(qty) + 1))
    if int_digits <= _MAX_NOTIONAL_DIGITS:  # p < 10**a and q < 10**b: p*q < 10**(a+b), the usual case
        return False
    with localcontext() as ctx:
        ctx.prec = 100  # exact: each factor has at most 38 digits
        return Decimal(price) * Decimal(qty) >= _MAX_NOTIONAL


def _check_trade(stream: str, msg: TradeMsg | fastparse.TradeMsg, recv_ns: int, rules: EdgeRules) -> Rejected | None:
    # written flat, with the common case first: this runs for every trade
    symbol = msg.s.upper()
    if rules.stream_symbols.get(stream) != symbol and (rejected := _check_symbol(stream, symbol, rules)):
        return rejected
    skew = rules.max_skew_ms
    if skew is not None:
        recv_ms = recv_ns // 1_000_000
        if not (-skew <= msg.T - recv_ms <= skew and -skew <= msg.E - recv_ms <= skew):
            return _check_times((("trade time T", msg.T), ("event time E", msg.E)), recv_ns, rules)
    p, q = msg.p, msg.q
    if not p.strip("0."):
        return Rejected(f"price {p} is not positive", VALUE_RANGE)
    if not q.strip("0."):
        return Rejected(f"quantity {q} is not positive", VALUE_RANGE)
    ip, iq = p.find("."), q.find(".")
    if (ip if ip >= 0 else len(p)) + (iq if iq >= 0 else len(q)) > _MAX_NOTIONAL_DIGITS and _notional_too_big(p, q):
        return Rejected(f"price x quantity {p} x {q} is 10**22 or more: beyond DECIMAL(38, 16)", VALUE_RANGE)
    return None


def _check_book(
    stream: str, msg: BookTickerMsg | fastparse.BookTickerMsg, recv_ns: int, rules: EdgeRules,
) -> Rejected | None:
    # written flat, with the common case first, like `_check_trade`: three in four frames are book tickers
    symbol = msg.s.upper()
    if rules.stream_symbols.get(stream) != symbol and (rejected := _check_symbol(stream, symbol, rules)):
        return rejected
    if rules.max_skew_ms is not None and (msg.E is not None or msg.T is not None):  # spot sends neither
        rejected = _check_times((("event time E", msg.E), ("transaction time T", msg.T)), recv_ns, rules)
        if rejected is not None:
            return rejected
    # Zero on either side is rejected too: the recordings hold none (52,117 book tickers), and the worker
    # divides by bid and ask quantities (imbalance, microprice).
    if msg.b.strip("0.") and msg.B.strip("0.") and msg.a.strip("0.") and msg.A.strip("0."):
        return None
    for name, value in (("bid", msg.b), ("ask", msg.a), ("bid quantity", msg.B), ("ask quantity", msg.A)):
        if not _positive(value):
            return Rejected(f"{name} {value} is not positive", VALUE_RANGE)
    return None


__all__ = [
    "NO_RULES", "BookSink", "Control", "EdgeRules", "ParseResult", "Rejected", "Skipped", "parse_frame",
    "parse_frame_schema", "take_frame"]
