"""One parser for every source: raw combined-stream frame text -> a validated tick, a skip, or a dead letter.

Live, replayed and synthetic frames all come through here, so they cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError

from qs_common.models import BookTicker, BookTickerMsg, Tick, Trade, TradeMsg, book_from_msg, trade_from_msg


class _TradeEnvelope(BaseModel):
    stream: str
    data: TradeMsg


class _BookEnvelope(BaseModel):
    stream: str
    data: BookTickerMsg


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed frame we do not publish: depth diffs, REST snapshots, subscription replies."""

    reason: str


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that tells the connection something, such as `serverShutdown`."""

    event: Literal["serverShutdown"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame that failed validation: it goes to the dead-letter stream with this reason."""

    reason: str


ParseResult = Trade | BookTicker | Skipped | Control | Rejected

_STREAM_PREFIX = b'{"stream":"'


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


def parse_frame(recv_ns: int, raw: bytes | str) -> ParseResult:
    """Parse one frame as received. Never raises on bad input."""
    if isinstance(raw, str):
        raw = raw.encode()
    kind = _stream_kind(raw)
    try:
        if kind == b"trade":
            return trade_from_msg(_TradeEnvelope.model_validate_json(raw).data, recv_ns)
        if kind == b"bookTicker":
            return book_from_msg(_BookEnvelope.model_validate_json(raw).data, recv_ns)
    except ValidationError as err:
        return Rejected(f"invalid {(kind or b'').decode()} frame: {_first_error(err)}")
    return _parse_slow(recv_ns, raw)


def _parse_slow(recv_ns: int, raw: bytes) -> ParseResult:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejected("not a JSON object")
    data = doc.get("data", doc)
    if isinstance(data, dict) and data.get("e") == "serverShutdown":
        return Control("serverShutdown")
    stream = doc.get("stream")
    if isinstance(stream, str) and "data" in doc:
        kind = stream.partition("@")[2]
        try:
            if kind == "trade":
                return trade_from_msg(_TradeEnvelope.model_validate(doc).data, recv_ns)
            if kind == "bookTicker":
                return book_from_msg(_BookEnvelope.model_validate(doc).data, recv_ns)
        except ValidationError as err:
            return Rejected(f"invalid {kind} frame: {_first_error(err)}")
        return Skipped(f"stream {kind or stream!r} not published")
    if "lastUpdateId" in doc and "bids" in doc:
        return Skipped("REST depth snapshot")
    if "result" in doc and "id" in doc:
        return Skipped("subscription reply")
    if "code" in doc and "msg" in doc:
        return Rejected(f"venue error {doc.get('code')}: {doc.get('msg')}")
    return Rejected("not a combined-stream frame (no 'stream' and 'data')")


def is_tick(result: ParseResult) -> bool:
    return isinstance(result, Trade | BookTicker)


__all__ = ["Control", "ParseResult", "Rejected", "Skipped", "Tick", "is_tick", "parse_frame"]
