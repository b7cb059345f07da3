from __future__ import annotations

import json

import pytest

from ingest.parser import (
    SCHEMA,
    SYMBOL_MISMATCH,
    TIME_RANGE,
    UNSUBSCRIBED,
    VALUE_RANGE,
    VENUE_ERROR,
    Control,
    EdgeRules,
    Rejected,
    Skipped,
    parse_frame,
    parse_frame_schema,
)
from qs_common.models import BookTicker, Trade
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.recordings import frames

TRADE = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259, "p": "61837.63000000",
         "q": "0.02000000", "T": 1723161255342, "m": True, "M": True}
BOOK = {"u": 50093239212, "s": "BTCUSDT", "b": "61837.63000000", "B": "3.78826000", "a": "61837.64000000",
        "A": "1.54698000"}


def frame(stream: str, data: object) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


@pytest.mark.parametrize("path", [BTC_RECORDING, ETH_RECORDING], ids=["btc", "eth"])
def test_every_recorded_frame_parses_to_its_kind(path):
    counts = {"trade": 0, "book": 0, "depth": 0, "snapshot": 0}
    for recv_ns, raw in frames(path):
        doc = json.loads(raw)
        result = parse_frame(recv_ns, raw)
        stream = doc.get("stream", "")
        if stream.endswith("@trade"):
            assert isinstance(result, Trade)
            d = doc["data"]
            assert (result.trade_id, result.price, result.qty, result.ts_trade_ms, result.ts_event_ms) == (
                d["t"], d["p"], d["q"], d["T"], d["E"])
            assert result.buyer_is_maker is d["m"] and result.recv_ns == recv_ns
            counts["trade"] += 1
        elif stream.endswith("@bookTicker"):
            assert isinstance(result, BookTicker)
            d = doc["data"]
            assert (result.update_id, result.bid, result.bid_qty, result.ask, result.ask_qty) == (
                d["u"], d["b"], d["B"], d["a"], d["A"])
            assert result.ts_event_ms is None
            counts["book"] += 1
        elif "@depth" in stream:
            assert isinstance(result, Skipped)
            counts["depth"] += 1
        else:
            assert isinstance(result, Skipped) and "snapshot" in result.reason
            counts["snapshot"] += 1
    assert counts["snapshot"] == 1 and min(counts.values()) > 0


def test_prices_keep_their_exact_text():
    t = parse_frame(1, frame("btcusdt@trade", TRADE | {"p": "0.00000001", "q": "12345678901.12345678"}))
    assert isinstance(t, Trade) and t.price == "0.00000001" and t.qty == "12345678901.12345678"


def test_unknown_fields_and_new_enum_values_are_tolerated():
    futures = TRADE | {"X": "NEW_KIND_OF_TRADE", "brand_new": {"nested": 1}}
    assert isinstance(parse_frame(1, frame("btcusdt@trade", futures)), Trade)
    book = BOOK | {"e": "bookTicker", "E": 5, "T": 4, "extra": [1, 2]}
    result = parse_frame(1, frame("btcusdt@bookTicker", book))
    assert isinstance(result, BookTicker) and result.ts_event_ms == 5


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"stream":"btcusdt@trade","data":{"e":"trade"', "trade"),
        (frame("btcusdt@trade", {k: v for k, v in TRADE.items() if k != "p"}), "data.p"),
        (frame("btcusdt@trade", TRADE | {"p": "1e5"}), "data.p"),
        (frame("btcusdt@trade", TRADE | {"q": "-1.0"}), "data.q"),
        (frame("btcusdt@trade", TRADE | {"t": "abc"}), "data.t"),
        (frame("btcusdt@trade", TRADE | {"m": "maybe"}), "data.m"),
        (frame("btcusdt@bookTicker", BOOK | {"b": None}), "data.b"),
        (frame("btcusdt@bookTicker", [1]), "bookTicker"),
        (b'{"code": -1121, "msg": "Invalid symbol."}', "venue error -1121"),
        (b'{"hello": "world"}', "not a combined-stream frame"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(raw, needle):
    result = parse_frame(1, raw)
    assert isinstance(result, Rejected), result
    assert needle in result.reason


def test_skips_and_controls():
    assert isinstance(parse_frame(1, b'{"result": null, "id": 1}'), Skipped)
    assert isinstance(parse_frame(1, frame("btcusdt@aggTrade", {"e": "aggTrade"})), Skipped)
    assert parse_frame(1, b'{"e":"serverShutdown","E":1}') == Control("serverShutdown")
    assert parse_frame(1, frame("btcusdt@trade", {"e": "serverShutdown", "E": 1})) == Control("serverShutdown")


# Names no stream can have, escaped in JSON or as the bytes of a lone surrogate (which `json.loads` lets through):
# each frame is dead-lettered, in the trade, book-ticker and depth parts of the name alike, whether depth is on
_TRADE_JSON = json.dumps(TRADE).encode()


@pytest.mark.parametrize("depth", [False, True], ids=["depth-off", "depth-on"])
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"stream":"btcusdt@\\ud800trade","data":' + _TRADE_JSON + b"}", "a lone surrogate U+D800 at 8"),
        (b'{"stream":"btcusdt@tr\xed\xa0\x80ade","data":' + _TRADE_JSON + b"}", "a lone surrogate U+D800 at 10"),
        (b'{"stream":"btcusdt@bookTicker\xed\xbf\xbf","data":{}}', "a lone surrogate U+DFFF at 18"),
        (frame("btcusdt@depth\udc80@100ms", {}), "a lone surrogate U+DC80 at 13"),
        (frame("btcusdt@trade\n", TRADE), "Cc character U+000A at 13"),
        (frame("btcusdt@\u200btrade", TRADE), "Cf character U+200B at 8"),
        (frame("btcusdt@ trade", TRADE), "Zs character U+0020 at 8"),
        (frame("", TRADE), "empty"),
    ],
    ids=["escaped-surrogate", "surrogate-bytes", "surrogate-bytes-book", "depth-surrogate", "newline", "zero-width",
         "space", "empty"],
)
def test_a_malformed_stream_name_is_dead_lettered_not_skipped(raw, why, depth):
    rules = EdgeRules(frozenset({"BTCUSDT"}), depth=depth)
    for parse in (parse_frame, parse_frame_schema):
        result = parse(1, raw, rules)
        assert isinstance(result, Rejected) and result.kind == SCHEMA, (parse.__name__, result)
        assert result.reason.startswith("invalid stream name ") and result.reason.endswith(why), result.reason
        assert result.reason.isascii()  # the name is quoted escaped: the reason is written to Redis as UTF-8


@pytest.mark.parametrize(
    "stream",
    ["btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@depth@100ms", "!miniTicker@arr", "btcusdt",
     "\u5e01\u5b89\u4eba\u751fusdt@aggTrade", "btcusdt@tradé"],
)
def test_a_well_formed_stream_not_published_is_still_skipped(stream):
    # non-ASCII letters are no malformation: a venue may list such a symbol; its streams are not ours
    result = parse_frame(1, frame(stream, {"e": "other"}), EdgeRules(frozenset({"BTCUSDT"})))
    assert isinstance(result, Skipped) and "not published" in result.reason, result


def test_fast_and_slow_paths_agree():
    spaced = json.dumps({"stream": "btcusdt@trade", "data": TRADE}, indent=1).encode()  # not the fast-path shape
    assert parse_frame(7, spaced) == parse_frame(7, frame("btcusdt@trade", TRADE))


# ---------------------------------------------------------------- edge validation (issue 8)

RECV_NS = TRADE["T"] * 1_000_000 + 5_000_000  # received 5 ms after the trade
RULES = EdgeRules(frozenset({"BTCUSDT", "ETHUSDT"}), max_skew_ms=86_400_000)


def fast(stream: str, data: object) -> bytes:
    """The exact shape Binance sends (no spaces), which takes the parser's fast path."""
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


@pytest.mark.parametrize("shape", [fast, frame], ids=["fast-path", "slow-path"])
@pytest.mark.parametrize(
    ("stream", "data", "kind", "needle"),
    [
        ("btcusdt@trade", TRADE | {"t": 2**70}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"t": 2**63}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"t": 0}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"T": 10**25}, SCHEMA, "data.T"),
        ("btcusdt@trade", TRADE | {"T": -1_735_689_600_000}, SCHEMA, "data.T"),
        ("btcusdt@trade", TRADE | {"E": -5}, SCHEMA, "data.E"),
        ("btcusdt@trade", TRADE | {"T": TRADE["T"] - 86_400_001}, TIME_RANGE, "trade time T"),
        ("btcusdt@trade", TRADE | {"E": TRADE["E"] + 90_000_000}, TIME_RANGE, "event time E"),
        ("btcusdt@trade", TRADE | {"p": "0.00000000"}, VALUE_RANGE, "price 0.00000000"),
        ("btcusdt@trade", TRADE | {"p": "0"}, VALUE_RANGE, "price 0 "),
        ("btcusdt@trade", TRADE | {"q": "0.0"}, VALUE_RANGE, "quantity"),
        ("btcusdt@trade", TRADE | {"p": "1" + "0" * 19, "q": "1" + "0" * 3}, VALUE_RANGE, "DECIMAL(38, 16)"),
        ("btcusdt@trade", TRADE | {"p": "100000000000.00000000", "q": "100000000000"}, VALUE_RANGE,
         "DECIMAL(38, 16)"),
        ("btcusdt@trade", TRADE | {"p": "1" + "0" * 20}, SCHEMA, "data.p"),
        ("btcusdt@trade", TRADE | {"p": "61837.630000001"}, SCHEMA, "data.p"),
        ("btcusdt@trade", TRADE | {"q": "0.123456789012345678"}, SCHEMA, "data.q"),
        ("btcusdt@trade", TRADE | {"p": "٦١٨٣٧.٦٣"}, SCHEMA, "data.p"),
        ("btcusdt@trade", TRADE | {"p": "61837.6３"}, SCHEMA, "data.p"),
        ("btcusdt@trade", TRADE | {"t": "3735683259"}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"t": 3735683259.0}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"t": True}, SCHEMA, "data.t"),
        ("btcusdt@trade", TRADE | {"m": "true"}, SCHEMA, "data.m"),
        ("btcusdt@trade", TRADE | {"p": 61837.63}, SCHEMA, "data.p"),
        ("btcusdt@trade", TRADE | {"s": "ETHUSDT"}, SYMBOL_MISMATCH, "symbol mismatch"),
        ("ethusdt@trade", TRADE, SYMBOL_MISMATCH, "symbol mismatch"),
        ("solusdt@trade", TRADE | {"s": "SOLUSDT"}, UNSUBSCRIBED, "unsubscribed symbol SOLUSDT"),
        ("btcusdt@bookTicker", BOOK | {"s": "ETHUSDT"}, SYMBOL_MISMATCH, "symbol mismatch"),
        ("solusdt@bookTicker", BOOK | {"s": "SOLUSDT"}, UNSUBSCRIBED, "unsubscribed"),
        ("btcusdt@bookTicker", BOOK | {"u": 2**64}, SCHEMA, "data.u"),
        ("btcusdt@bookTicker", BOOK | {"b": "0.00000000"}, VALUE_RANGE, "bid 0"),
        ("btcusdt@bookTicker", BOOK | {"a": "0"}, VALUE_RANGE, "ask 0"),
        ("btcusdt@bookTicker", BOOK | {"A": "0.00000000"}, VALUE_RANGE, "ask quantity"),
        ("btcusdt@bookTicker", BOOK | {"b": "1.123456789"}, SCHEMA, "data.b"),
        ("btcusdt@bookTicker", BOOK | {"E": 1}, TIME_RANGE, "event time E"),
    ],
)
def test_impossible_ticks_are_rejected_with_their_reason_class(shape, stream, data, kind, needle):
    result = parse_frame(RECV_NS, shape(stream, data), RULES)
    assert isinstance(result, Rejected), result
    assert result.kind == kind and needle in result.reason, result


@pytest.mark.parametrize(
    "data",
    [
        TRADE | {"p": "61837.630000000000", "q": "0.020000000000000000"},  # zeros past 8 places: exact, kept
        TRADE | {"p": "99999999999.99999999", "q": "99999999999.99999999"},  # p*q just below 10**22
        TRADE | {"p": "0.00000001", "q": "0.00000001"},
        TRADE | {"T": RECV_NS // 10**6 - 86_400_000, "E": RECV_NS // 10**6 + 86_400_000},  # at the skew bound
    ],
)
def test_ticks_at_the_edges_of_the_domain_pass_unchanged(data):
    for shape in (fast, frame):
        result = parse_frame(RECV_NS, shape("btcusdt@trade", data), RULES)
        assert isinstance(result, Trade), result
        assert (result.price, result.qty) == (data["p"], data["q"])


def test_every_recorded_tick_passes_the_edge_rules():
    """The domain rules reject nothing Binance really sent (the receive clock ran 1.27 s behind)."""
    for path in (BTC_RECORDING, ETH_RECORDING):
        for recv_ns, raw in frames(path):
            assert not isinstance(parse_frame(recv_ns, raw, RULES), Rejected)


def test_without_a_clock_or_symbol_set_only_the_schema_and_the_stream_symbol_count():
    # replay lines lack nothing, but tools and benchmarks parse without rules
    assert isinstance(parse_frame(1, fast("solusdt@trade", TRADE | {"s": "SOLUSDT"})), Trade)
    mismatch = parse_frame(1, fast("btcusdt@trade", TRADE | {"s": "ETHUSDT"}))
    assert isinstance(mismatch, Rejected) and mismatch.kind == SYMBOL_MISMATCH


def test_deep_nesting_binary_and_huge_frames_are_rejected_never_raised():
    deep = b"[" * 200_000 + b"]" * 200_000
    nested = b'{"x":' * 100_000 + b"1" + b"}" * 100_000
    deep_in_stream = b'{"stream":"btcusdt@trade","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = fast("btcusdt@trade", TRADE | {"pad": "x" * 5_000_000})
    for raw in (deep, nested, deep_in_stream, b"\x00\x01\x02\xff", "ÿ".encode("latin-1") * 100):
        result = parse_frame(RECV_NS, raw, RULES)
        assert isinstance(result, Rejected), raw[:40]
        assert len(result.reason) < 1_000
    assert isinstance(parse_frame(RECV_NS, huge, RULES), Trade)  # unknown fields are ignored, however long
    venue = json.dumps({"code": 1, "msg": "m" * 100_000}).encode()
    result = parse_frame(RECV_NS, venue, RULES)
    assert isinstance(result, Rejected) and result.kind == VENUE_ERROR and len(result.reason) < 1_000
