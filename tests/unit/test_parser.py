from __future__ import annotations

import json

import pytest

from ingest.parser import Control, Rejected, Skipped, parse_frame
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


def test_fast_and_slow_paths_agree():
    spaced = json.dumps({"stream": "btcusdt@trade", "data": TRADE}, indent=1).encode()  # not the fast-path shape
    assert parse_frame(7, spaced) == parse_frame(7, frame("btcusdt@trade", TRADE))
