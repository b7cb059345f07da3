"""Depth wire schemas (qs_common.venues.binance.wire) on recorded frames and on broken ones."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from qs_common.venues.binance.wire import (
    DepthSnapshotMsg,
    DepthUpdateMsg,
    FuturesDepthUpdateMsg,
    diff_from_msg,
    snapshot_from_msg,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPOT = {"e": "depthUpdate", "E": 1723161255308, "s": "BTCUSDT", "U": 50093239203, "u": 50093239207,
        "b": [["55653.87000000", "0.00000000"]], "a": [["61838.04000000", "0.32332000"]]}
USDM = {"e": "depthUpdate", "E": 1723161255308, "T": 1723161255305, "s": "BTCUSDT", "U": 157, "u": 160, "pu": 149,
        "b": [["61837.6", "1.234"]], "a": []}


@pytest.mark.parametrize(("name", "diffs"), [("btcusdt_20240808.gz", 3_451), ("ethusdt_20240808.gz", 3_434)])
def test_every_recorded_depth_frame_and_the_snapshot_validate(name, diffs):
    seen = snapshots = 0
    with gzip.open(FIXTURES / name, "rt") as f:
        for line in f:
            recv, frame = line.split(" ", 1)
            if frame.startswith('{"lastUpdateId"'):
                snap = snapshot_from_msg(DepthSnapshotMsg.model_validate_json(frame), name[:7])
                assert snap.symbol == name[:7].upper() and len(snap.bids) == len(snap.asks) == 1_000
                snapshots += 1
            elif "@depth@100ms" in frame[:40]:
                raw = json.loads(frame)["data"]
                d = diff_from_msg(DepthUpdateMsg.model_validate_json(json.dumps(raw)), int(recv))
                assert (d.first_id, d.final_id, d.prev_final_id, d.ts_event_ms) == (raw["U"], raw["u"], None, raw["E"])
                assert [list(lv) for lv in d.bids] == raw["b"] and [list(lv) for lv in d.asks] == raw["a"]
                seen += 1
    assert (seen, snapshots) == (diffs, 1)


def test_usdm_diff_carries_pu():
    d = diff_from_msg(FuturesDepthUpdateMsg.model_validate(USDM), 5)
    assert (d.first_id, d.final_id, d.prev_final_id, d.bids, d.asks) == (157, 160, 149, (("61837.6", "1.234"),), ())
    with pytest.raises(ValidationError, match="pu"):
        FuturesDepthUpdateMsg.model_validate(SPOT)  # a spot frame lacks pu


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"b": [["61837.63", 1.5]]}, "b.0.1"),  # a number where Binance sends text
        ({"b": [["61837.63", "1", "2"]]}, "b.0"),  # a level is exactly [price, qty]
        ({"a": [["-1", "1"]]}, "a.0.0"),
        ({"a": [["1e5", "1"]]}, "a.0.0"),
        ({"U": "50093239203"}, "U"),
        ({"u": 2**63}, "u"),
        ({"s": "BTC/USDT"}, "s"),
    ],
)
def test_broken_diffs_are_rejected_naming_the_field(change, where):
    with pytest.raises(ValidationError) as err:
        DepthUpdateMsg.model_validate({**SPOT, **change})
    assert where in str(err.value)


def test_snapshot_without_an_id_is_rejected():
    with pytest.raises(ValidationError, match="lastUpdateId"):
        DepthSnapshotMsg.model_validate({"bids": [], "asks": []})
