"""The fast decoder (msgspec) and the Pydantic wire schema accept and reject the same trade and book-ticker frames.

The fast path may only accept a frame the schema accepts, with the same values (what it declines goes to the
schema, which gives the reason); `parse_frame` must therefore equal `parse_frame_schema` on every frame.
Frames are generated around valid ones: fields replaced by wrong types, out-of-range numbers, near-miss texts
(a trailing newline, Unicode digits, a ninth decimal place), fields dropped or added, duplicate keys, escapes,
invalid UTF-8 and trailing bytes.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest import fastparse
from ingest.parser import EdgeRules, Rejected, Skipped, parse_frame, parse_frame_schema
from qs_common.models import DECIMAL_PATTERN, INT64_MAX, SYMBOL_PATTERN, BookTicker, Trade
from qs_common.venues.binance.wire import BookTickerFrame, TradeFrame
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.recordings import frames
from tests.unit.test_parser import BOOK, TRADE

RULES = EdgeRules(frozenset({"BTCUSDT", "ETHUSDT"}), max_skew_ms=86_400_000)
RECV_NS = TRADE["T"] * 1_000_000 + 5_000_000

decimals = st.from_regex(f"\\A{DECIMAL_PATTERN}\\Z", fullmatch=True)
near_decimals = st.one_of(
    decimals.map(lambda s: s + "\n"), decimals.map(lambda s: " " + s), decimals.map(lambda s: s + "1"),
    st.sampled_from(["", ".", "1.", ".5", "1e5", "-1.0", "٦١", "6３", "1.123456789", "1.0000000000000000000",
                     "0", "0.00000000", "1" * 21, "1" * 20, "00.10", "+1"]),
)
symbols = st.from_regex(f"\\A{SYMBOL_PATTERN}\\Z", fullmatch=True)
ints = st.one_of(
    st.sampled_from([0, 1, -1, INT64_MAX, INT64_MAX + 1, 2**64, 2**70, TRADE["T"], TRADE["T"] - 86_400_001]),
    st.integers(min_value=-(2**65), max_value=2**65),
)
junk = st.one_of(
    st.none(), st.booleans(), ints, st.floats(allow_nan=False), st.text(max_size=12), near_decimals, decimals,
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
TRADE_FIELDS = {"e": st.text(max_size=8), "E": ints, "s": symbols, "t": ints, "p": decimals, "q": decimals,
                "T": ints, "m": st.booleans(), "X": st.none() | st.text(max_size=8)}
BOOK_FIELDS = {"u": ints, "s": symbols, "b": decimals, "B": decimals, "a": decimals, "A": decimals,
               "E": st.none() | ints, "T": st.none() | ints}
STREAMS = {"trade": ["btcusdt@trade", "ethusdt@trade", "solusdt@trade", "BTCUSDT@trade"],
           "book": ["btcusdt@bookTicker", "ethusdt@bookTicker", "solusdt@bookTicker"]}


@st.composite
def payloads(draw: st.DrawFn, kind: str) -> dict[str, object]:
    base, fields = (TRADE, TRADE_FIELDS) if kind == "trade" else (BOOK, BOOK_FIELDS)
    data: dict[str, object] = dict(base)
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=4)):
        how = draw(st.sampled_from(["valid", "junk", "drop"]))
        if how == "drop":
            data.pop(name, None)
        else:
            data[name] = draw(fields[name] if how == "valid" else junk)
    if draw(st.booleans()):
        data[draw(st.text(min_size=1, max_size=4))] = draw(junk)
    return data


@st.composite
def raw_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["trade", "book"]))
    data = draw(payloads(kind))
    stream = draw(st.sampled_from(STREAMS[kind]))
    text = json.dumps({"stream": stream, "data": data}, separators=(",", ":"),
                      ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8
    twist = draw(st.sampled_from(["none", "duplicate", "trailing", "escape"]))
    if twist == "duplicate" and b'"data":{' in raw:  # a key twice: the schema keeps the last one
        name = draw(st.sampled_from(sorted(data) or ["p"]))
        dup = json.dumps({name: draw(junk)}, separators=(",", ":"))[1:-1].encode() + b","
        raw = raw.replace(b'"data":{', b'"data":{' + dup, 1)
    elif twist == "trailing":
        raw += draw(st.sampled_from([b" ", b"\n", b"x", b"}", b"\x00"]))
    elif twist == "escape":  # the same text written as a JSON escape
        raw = raw.replace(b'"BTCUSDT"', b'"\\u0042TCUSDT"', 1).replace(b'"61837.63000000"', b'"6\\u00317837.63"', 1)
    return raw


def _schema_data(raw: bytes) -> object:
    model = TradeFrame if b"@trade" in raw[:40] else BookTickerFrame
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_frames())
@example(b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.0\\n","q":"1","T":1,'
         b'"m":true}}')
@example(b'{"stream":"btcusdt@trade","data":{"e":"\\ud800","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,'
         b'"m":true}}')
def test_fast_path_accepts_only_what_the_schema_accepts_with_the_same_values(raw):
    fast = fastparse.trade_frame(raw) if b"@trade" in raw[:40] else fastparse.book_frame(raw)
    schema = _schema_data(raw)
    if fast is not None:
        assert schema is not None, raw
        assert fast.stream == schema.stream  # type: ignore[attr-defined]
        for name in fast.data.__struct_fields__:
            assert getattr(fast.data, name) == getattr(schema.data, name), name  # type: ignore[attr-defined]
    for rules in (RULES, EdgeRules()):
        assert parse_frame(RECV_NS, raw, rules) == parse_frame_schema(RECV_NS, raw, rules)


def test_the_fast_path_takes_every_recorded_trade_and_book_ticker():
    """Or it would be dead code: every real frame goes through it, with the schema's result."""
    taken = 0
    for path in (BTC_RECORDING, ETH_RECORDING):
        for recv_ns, raw in frames(path):
            if b"@trade" in raw[:40]:
                fast = fastparse.trade_frame(raw)
            elif b"@bookTicker" in raw[:40]:
                fast = fastparse.book_frame(raw)
            else:
                continue
            assert fast is not None, raw
            result = parse_frame(recv_ns, raw, RULES)
            assert isinstance(result, (Trade, BookTicker)) and result == parse_frame_schema(recv_ns, raw, RULES)
            taken += 1
    assert taken > 10_000


def test_deeply_nested_frames_fall_back_to_the_schema_never_raise():
    # msgspec raises RecursionError (not a DecodeError) on objects nested 100,000 deep
    for kind in (b"btcusdt@trade", b"btcusdt@bookTicker"):
        for body in (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"[" * 100_000 + b"]" * 100_000):
            raw = b'{"stream":"' + kind + b'","data":' + body + b"}"
            assert (fastparse.trade_frame(raw) if b"trade" in kind else fastparse.book_frame(raw)) is None
            assert parse_frame(RECV_NS, raw, RULES) == parse_frame_schema(RECV_NS, raw, RULES)


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])
@pytest.mark.parametrize("base", [TRADE, BOOK], ids=["trade", "book"])
def test_a_bad_byte_anywhere_is_rejected_as_the_schema_says(bad: bytes, base: dict[str, object]) -> None:
    """Every position of a byte that is not UTF-8 (or is an encoded surrogate): `parse_frame` never raises and never
    accepts what the schema refuses (msgspec raised UnicodeDecodeError, and skipped bad bytes in an unknown key)."""
    kind = "trade" if base is TRADE else "bookTicker"
    text = json.dumps({"stream": f"btcusdt@{kind}", "data": base}, separators=(",", ":")).encode()
    for at in range(1, len(text)):
        raw = text[:at] + bad + text[at:]
        fast, schema = parse_frame(RECV_NS, raw, RULES), parse_frame_schema(RECV_NS, raw, RULES)
        # (an encoded surrogate inside the stream's kind reads as a stream not published: Skipped, both paths)
        assert type(fast) is type(schema) and isinstance(fast, Rejected | Skipped), (at, raw[max(0, at - 20):at + 10])


@settings(max_examples=500, deadline=None)
@given(st.one_of(decimals, near_decimals, symbols, st.text(alphabet="0123456789.Ab\n", max_size=45)))
def test_the_possessive_patterns_match_the_same_texts_as_the_schemas(text: str) -> None:
    # fastparse matches possessive forms (faster in `re`); a pattern edit that breaks the equivalence fails here
    for pattern in (DECIMAL_PATTERN, SYMBOL_PATTERN):
        plain = re.fullmatch(pattern, text) is not None
        assert (re.fullmatch(fastparse.possessive(pattern), text) is not None) == plain, (pattern, text)
