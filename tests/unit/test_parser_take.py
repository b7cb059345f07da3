"""`take_frame` (ingest's hot path: book tickers handed to the publisher as values, no BookTicker between) gives
exactly `parse_frame`'s result, and for a book ticker `parse_frame`'s tick as the values handed on: on the
generated frames of test_fastparse (near-misses, junk, bad bytes, escapes), on bad edges and on every recorded
frame. So ingest's dead letters and XADD bytes are those of `parse_frame` + `codec.pack_xadd`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from ingest.parser import EdgeRules, Rejected, take_frame
from ingest.parser import parse_frame as reference
from qs_common import codec
from qs_common.models import BookTicker
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.recordings import frames
from tests.unit.test_fastparse import RECV_NS, RULES, raw_frames
from tests.unit.test_parser import BOOK, TRADE, frame

STREAM = b"stream:ticks"


def taken(recv_ns: int, raw: bytes | str, rules: EdgeRules) -> object:
    """What `take_frame` gives, as `parse_frame` would: the handed-on values made a BookTicker (at most one)."""
    handed: list[BookTicker] = []
    result = take_frame(recv_ns, raw, rules, lambda *values: handed.append(BookTicker(*values)))
    assert (result is None) == (len(handed) == 1) and len(handed) <= 1, (result, handed)
    return handed[0] if handed else result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_frames())
def test_take_frame_is_parse_frame_on_generated_frames(raw: bytes) -> None:
    for rules in (RULES, EdgeRules()):
        assert taken(RECV_NS, raw, rules) == reference(RECV_NS, raw, rules)


@pytest.mark.parametrize("change", [
    {"s": "ETHUSDT"},  # symbol mismatch with the stream
    {"b": "0.000"}, {"A": "0"},  # not positive
    {"E": 1},  # futures' event time, far from the receive time
    {"u": 2**63},  # beyond int64: the schema's reason
])
def test_rejected_book_tickers_are_parse_frames_rejections(change: dict[str, object]) -> None:
    raw = frame("btcusdt@bookTicker", {**BOOK, **change})
    result = taken(RECV_NS, raw, RULES)
    assert isinstance(result, Rejected) and result == reference(RECV_NS, raw, RULES)


def test_trades_text_frames_and_others_are_parse_frames() -> None:
    for raw in (frame("btcusdt@trade", TRADE), frame("btcusdt@depth@100ms", {"e": "depthUpdate"}), b"[1]",
                b'{"result":null,"id":1}', b"not json"):
        assert taken(RECV_NS, raw, RULES) == reference(RECV_NS, raw, RULES)
    text = frame("btcusdt@bookTicker", BOOK).decode()  # a str frame takes the general way
    assert taken(RECV_NS, text, RULES) == reference(RECV_NS, text, RULES)


def test_every_recorded_book_ticker_is_handed_on_and_packs_as_its_tick() -> None:
    handed = 0
    packed: list[bytes] = []

    def pack(*values: object) -> None:
        packed.append(codec.pack_book_xadd(STREAM, *values))  # type: ignore[arg-type]

    for path in (BTC_RECORDING, ETH_RECORDING):
        for recv_ns, raw in frames(path):
            packed.clear()
            result = take_frame(recv_ns, raw, RULES, pack)
            expected = reference(recv_ns, raw, RULES)
            if isinstance(expected, BookTicker):
                assert result is None and packed == [codec.pack_xadd(STREAM, expected)]
                handed += 1
            else:
                assert result == expected and not packed
    assert handed > 10_000
