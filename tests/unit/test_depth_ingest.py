"""Depth at the ingest edge (DEPTH=true): depth frames and a replay's REST snapshot line become DepthDiff and
DepthSnapshot, checked like trades; the codec carries them to stream:depth and back exactly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ingest.parser import (
    SCHEMA,
    SYMBOL_MISMATCH,
    UNSUBSCRIBED,
    VALUE_RANGE,
    EdgeRules,
    Rejected,
    Skipped,
    parse_frame,
)
from ingest.sources.replay import read_recording, recording_symbol
from qs_common import codec
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.venues.binance.config import combined_stream_url

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RULES = EdgeRules(frozenset({"BTCUSDT", "ETHUSDT"}), None, depth=True)
DIFF = {"e": "depthUpdate", "E": 1723161255308, "s": "BTCUSDT", "U": 50093239203, "u": 50093239207,
        "b": [["55653.87000000", "0.00000000"]], "a": [["61838.04000000", "0.32332000"]]}


def frame(data: dict, stream: str = "btcusdt@depth@100ms") -> bytes:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def test_depth_frame_becomes_a_diff_with_exact_text():
    d = parse_frame(5, frame(DIFF), RULES)
    assert d == DepthDiff("BTCUSDT", 50093239203, 50093239207, None, (("55653.87000000", "0.00000000"),),
                          (("61838.04000000", "0.32332000"),), 1723161255308, 5)


def test_depth_is_skipped_without_depth_as_before():
    assert isinstance(parse_frame(5, frame(DIFF), EdgeRules(frozenset({"BTCUSDT"}))), Skipped)


@pytest.mark.parametrize(("change", "stream", "kind"), [
    ({"s": "ETHUSDT"}, "btcusdt@depth@100ms", SYMBOL_MISMATCH),
    ({"s": "XRPUSDT"}, "xrpusdt@depth@100ms", UNSUBSCRIBED),
    ({"b": [["1e5", "1.0"]]}, "btcusdt@depth@100ms", SCHEMA),  # not plain decimal text
    ({"b": [["61837.63", "1.0", "x"]]}, "btcusdt@depth@100ms", SCHEMA),
    ({"a": [["0.00", "1.0"]]}, "btcusdt@depth@100ms", VALUE_RANGE),
    ({"U": 50093239208}, "btcusdt@depth@100ms", VALUE_RANGE),  # first id after the final one
    ({"u": 2**63}, "btcusdt@depth@100ms", SCHEMA),  # beyond int64
    ({"U": "50093239203"}, "btcusdt@depth@100ms", SCHEMA),  # a number as text is a broken frame
])
def test_bad_depth_frames_are_rejected_with_their_class(change, stream, kind):
    got = parse_frame(5, frame({**DIFF, **change}, stream), RULES)
    assert isinstance(got, Rejected) and got.kind == kind, got


def test_usdm_depth_needs_and_keeps_pu():
    rules = EdgeRules(frozenset({"BTCUSDT"}), None, depth=True, usdm=True)
    assert isinstance(parse_frame(5, frame(DIFF), rules), Rejected)  # no pu
    d = parse_frame(5, frame({**DIFF, "pu": 50093239202, "T": 1723161255305}), rules)
    assert isinstance(d, DepthDiff) and d.prev_final_id == 50093239202


def test_subscription_url_names_depth_only_when_asked():
    assert "depth" not in combined_stream_url("wss://x", ("BTCUSDT",))
    assert combined_stream_url("wss://x", ("BTCUSDT",), True).endswith(
        "streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms")


def test_replay_publishes_the_recordings_snapshot_for_its_symbol():
    path = FIXTURES / "ethusdt_20240808.gz"
    assert recording_symbol(path) == b"ethusdt"
    snaps = [parse_frame(ns, raw, RULES) for ns, raw in read_recording(path) if b"depthSnapshot" in raw[:40]]
    assert len(snaps) == 1 and isinstance(snaps[0], DepthSnapshot)
    with gzip.open(path, "rt") as f:
        line = next(x for x in f if '"lastUpdateId"' in x[:40]).split(" ", 1)[1]
    rest = json.loads(line)
    assert snaps[0].symbol == "ETHUSDT" and snaps[0].last_update_id == rest["lastUpdateId"]
    assert [list(lv) for lv in snaps[0].bids] == rest["bids"] and [list(lv) for lv in snaps[0].asks] == rest["asks"]
    # without DEPTH it is skipped, as the snapshot line always was
    assert isinstance(parse_frame(1, next(r for _, r in read_recording(path) if b"depthSnapshot" in r[:40]),
                                  EdgeRules(frozenset({"ETHUSDT"}))), Skipped)


def _fields(entry: dict) -> dict[bytes, bytes]:
    return {k.encode(): (v if isinstance(v, str) else str(v)).encode() for k, v in entry.items()}


def test_codec_round_trips_diffs_and_snapshots_exactly():
    diff = DepthDiff("BTCUSDT", 7, 9, 6, (("61837.63000000", "0.00000000"),), (("1.10", "2"),), 1723161255308, 5)
    snap = DepthSnapshot("ETHUSDT", 11, (("2683.80000000", "1.5"),), ())
    assert codec.decode_depth(_fields(codec.encode_depth(diff))) == diff
    assert codec.decode_depth(_fields(codec.encode_depth(snap, 42))) == snap


@pytest.mark.parametrize("change", [
    {"v": "2"}, {"kind": "trade"}, {"b": "not json"}, {"b": '[["1", 2]]'}, {"id": "x"}, {"U": None},
])
def test_codec_names_what_is_wrong(change):
    entry = codec.encode_depth(DepthDiff("BTCUSDT", 7, 9, None, (), (), 1, 5))
    fields = {k: v for k, v in _fields(entry).items() if change.get(k.decode(), "") is not None}
    fields.update({k.encode(): v.encode() for k, v in change.items() if v is not None})
    with pytest.raises(codec.DecodeError):
        codec.decode_depth(fields)
