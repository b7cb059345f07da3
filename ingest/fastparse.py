"""The hot path of `ingest.parser`: trade and book-ticker frames decoded by msgspec, checked by the schema's rules.

The Pydantic wire models (`qs_common.venues.binance.wire`) stay the schema; validating a frame with them costs
~11 µs, this ~2 µs. These structs mirror them field for field (strict types: a number for an integer, a JSON
boolean for a flag; ids and times positive int64; unknown fields ignored), and the decimal and symbol texts are
matched whole against the schema's own patterns (`qs_common.models`), all of one frame in one `re.fullmatch`.

A frame is accepted here only where the schema accepts it, with the same values; anything else (a bad frame,
or a good one in a shape msgspec reads differently) returns None and takes the Pydantic path, which gives the
reason. So rejections and their reasons are the schema's alone. `tests/unit/test_fastparse.py` checks the
agreement on hypothesis-generated frames.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from qs_common.models import DECIMAL_PATTERN, INT64_MAX, SYMBOL_PATTERN

_Int64 = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]


class TradeMsg(msgspec.Struct):
    """`qs_common.venues.binance.wire.TradeMsg`, texts unchecked (see `trade_frame`)."""

    e: str
    E: _Int64
    s: str
    t: _Int64
    p: str
    q: str
    T: _Int64
    m: bool
    X: str | None = None


class BookTickerMsg(msgspec.Struct):
    """`qs_common.venues.binance.wire.BookTickerMsg`, texts unchecked (see `book_frame`)."""

    u: _Int64
    s: str
    b: str
    B: str
    a: str
    A: str
    E: _Int64 | None = None
    T: _Int64 | None = None


class TradeFrame(msgspec.Struct):
    stream: str
    data: TradeMsg


class BookTickerFrame(msgspec.Struct):
    stream: str
    data: BookTickerMsg


_TRADE = msgspec.json.Decoder(TradeFrame)
_BOOK = msgspec.json.Decoder(BookTickerFrame)
# Neither pattern admits a space, so texts joined by single spaces match only if each matches its own pattern.
_TRADE_TEXTS = re.compile(f"{SYMBOL_PATTERN} {DECIMAL_PATTERN} {DECIMAL_PATTERN}")
_BOOK_TEXTS = re.compile(f"{SYMBOL_PATTERN}(?: {DECIMAL_PATTERN}){{4}}")


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes) -> Any:
    """The decoded frame, or None where the schema must decide."""
    if not raw.isascii():  # Binance writes ASCII; msgspec would skip bad UTF-8 in an unknown key (the schema not)
        return None
    try:
        return decoder.decode(raw)
    # DecodeError covers ValidationError; deep objects recurse
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None


def trade_frame(raw: bytes) -> TradeFrame | None:
    """The frame if the schema accepts it as a trade frame; None: ask the schema (it may still accept it)."""
    frame: TradeFrame | None = _decode(_TRADE, raw)
    if frame is None:
        return None
    d = frame.data
    return frame if _TRADE_TEXTS.fullmatch(f"{d.s} {d.p} {d.q}") else None


def book_frame(raw: bytes) -> BookTickerFrame | None:
    """The frame if the schema accepts it as a book-ticker frame; None: ask the schema."""
    frame: BookTickerFrame | None = _decode(_BOOK, raw)
    if frame is None:
        return None
    d = frame.data
    return frame if _BOOK_TEXTS.fullmatch(f"{d.s} {d.b} {d.B} {d.a} {d.A}") else None
