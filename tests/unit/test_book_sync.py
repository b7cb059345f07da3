"""Binance's local-book rules per venue (qs_analytics.book.sync), on small hand-made diffs."""

from __future__ import annotations

import pytest

from qs_analytics.book.sync import Action, BookSync
from qs_common.depth import DepthDiff, DepthSnapshot


def diff(first: int, final: int, pu: int | None = None, bids=(), asks=(), symbol: str = "BTCUSDT") -> DepthDiff:
    return DepthDiff(symbol, first, final, pu, tuple(bids), tuple(asks), 1_700_000_000_000 + final, 0)


def snap(lid: int, bids=(("100.0", "1"),), asks=(("101.0", "1"),)) -> DepthSnapshot:
    return DepthSnapshot("BTCUSDT", lid, tuple(bids), tuple(asks))


def test_spot_buffers_asks_once_drops_old_and_applies_the_straddling_diff():
    s = BookSync("BTCUSDT")
    assert s.stale
    assert s.on_diff(diff(1, 5, bids=[("99.0", "7")])) == Action.NEED_SNAPSHOT
    assert s.on_diff(diff(6, 9, bids=[("98.0", "1")])) == Action.BUFFERED
    assert s.on_diff(diff(10, 12, bids=[("100.0", "0")])) == Action.BUFFERED
    assert s.on_snapshot(snap(9)) == Action.SYNCED  # 1-5 and 6-9 are in the snapshot already: dropped
    assert not s.stale and s.book.last_update_id == 12
    assert s.book.top() == ([], [["101.0", "1"]])  # 100.0 removed by 10-12; 99.0 and 98.0 never applied
    assert s.counts == {"applied": 1, "dropped": 2, "gaps": 0, "snapshots": 1, "stale_snapshots": 0}
    assert s.on_diff(diff(13, 13, asks=[("101.5", "2")])) == Action.APPLIED
    assert s.on_diff(diff(11, 13)) == Action.DROPPED  # a repeat
    assert s.book.best_ask() == ("101.0", "1") and s.book.last_update_id == 13


def test_spot_snapshot_older_than_the_buffer_asks_for_a_newer_one():
    s = BookSync("BTCUSDT")
    s.on_diff(diff(10, 12))
    assert s.on_snapshot(snap(8)) == Action.NEED_SNAPSHOT  # 9 is missing between snapshot and buffer
    assert s.stale and s.counts["stale_snapshots"] == 1
    assert s.on_diff(diff(13, 14)) == Action.BUFFERED  # the caller already knows it needs a snapshot
    assert s.on_snapshot(snap(9)) == Action.SYNCED and s.book.last_update_id == 14


def test_spot_snapshot_newer_than_every_buffered_diff_then_the_next_diff_must_straddle():
    s = BookSync("BTCUSDT")
    s.on_diff(diff(1, 3))
    assert s.on_snapshot(snap(20)) == Action.SYNCED and s.book.last_update_id == 20
    assert s.on_diff(diff(15, 20)) == Action.DROPPED
    assert s.on_diff(diff(19, 22)) == Action.APPLIED  # straddles 21
    s2 = BookSync("BTCUSDT")
    s2.on_snapshot(snap(20))
    assert s2.on_diff(diff(22, 23)) == Action.RESYNC and s2.stale  # 21 never came


def test_spot_gap_marks_stale_records_it_and_keeps_the_last_good_book():
    s = BookSync("BTCUSDT")
    s.on_snapshot(snap(5))
    assert s.on_diff(diff(6, 8, bids=[("100.5", "3")])) == Action.APPLIED
    before = s.book.top()
    assert s.on_diff(diff(10, 11, bids=[("100.7", "1")])) == Action.RESYNC  # 9 missing
    assert s.stale and s.counts["gaps"] == 1 and s.book.top() == before and s.book.last_update_id == 8
    gap = s.gaps[-1]
    assert (gap.book_update_id, gap.first_id, gap.final_id, gap.prev_final_id) == (8, 10, 11, None)
    assert s.on_diff(diff(12, 12)) == Action.BUFFERED
    assert s.on_snapshot(snap(10, bids=[("100.6", "2")])) == Action.SYNCED  # 10-11 straddles 11, then 12
    assert s.book.best_bid() == ("100.7", "1") and s.book.last_update_id == 12 and not s.stale


def test_spot_overlap_is_a_break_too():
    s = BookSync("BTCUSDT")
    s.on_snapshot(snap(5))
    s.on_diff(diff(6, 8))
    assert s.on_diff(diff(8, 9)) == Action.RESYNC  # U must be exactly previous u + 1


def test_hole_inside_the_buffer_is_found_at_snapshot_time():
    s = BookSync("BTCUSDT")
    s.on_diff(diff(5, 6))
    s.on_diff(diff(9, 10))  # 7-8 lost while the snapshot was on its way
    s.on_diff(diff(11, 11))
    assert s.on_snapshot(snap(5)) == Action.RESYNC
    assert s.stale and s.book.last_update_id == 6 and s.counts["gaps"] == 1
    assert s.on_snapshot(snap(9)) == Action.SYNCED and s.book.last_update_id == 11


def test_buffer_overflow_forgets_the_oldest_and_the_straddle_check_notices():
    s = BookSync("BTCUSDT", buffer_max=2)
    s.on_diff(diff(1, 1))
    s.on_diff(diff(2, 2))
    s.on_diff(diff(3, 3))
    assert s.on_snapshot(snap(1)) == Action.SYNCED  # 2 and 3 kept: joins at 2
    s = BookSync("BTCUSDT", buffer_max=2)
    for i in range(1, 5):
        s.on_diff(diff(i, i))
    assert s.on_snapshot(snap(1)) == Action.NEED_SNAPSHOT  # 2 fell out of the buffer


def test_usdm_uses_pu_and_keeps_the_diff_ending_at_the_snapshot():
    s = BookSync("BTCUSDT", venue="usdm")
    assert s.on_diff(diff(3, 7, pu=2)) == Action.NEED_SNAPSHOT
    s.on_diff(diff(8, 10, pu=7, asks=[("101.0", "0")]))
    s.on_diff(diff(11, 15, pu=10, asks=[("102.0", "4")]))
    # u == lastUpdateId is kept on USDⓈ-M (dropped only when u < lastUpdateId) and straddles: U <= 10 <= u
    assert s.on_snapshot(snap(10, asks=[("101.0", "5")])) == Action.SYNCED
    assert s.counts["applied"] == 2 and s.counts["dropped"] == 1
    assert s.book.top() == ([["100.0", "1"]], [["102.0", "4"]])
    # ids need not be contiguous on USDⓈ-M: only pu == previous u counts
    assert s.on_diff(diff(20, 25, pu=15)) == Action.APPLIED
    assert s.on_diff(diff(26, 27, pu=24)) == Action.RESYNC
    assert s.gaps[-1].prev_final_id == 24 and s.stale


def test_usdm_first_diff_must_contain_the_snapshot_id():
    s = BookSync("BTCUSDT", venue="usdm")
    s.on_snapshot(snap(10))
    assert s.on_diff(diff(5, 9, pu=4)) == Action.DROPPED
    assert s.on_diff(diff(11, 12, pu=8)) == Action.RESYNC  # U > lastUpdateId and pu says an event came between
    s = BookSync("BTCUSDT", venue="usdm")
    s.on_snapshot(snap(10))
    assert s.on_diff(diff(9, 12, pu=8)) == Action.APPLIED
    s = BookSync("BTCUSDT", venue="usdm")
    s.on_snapshot(snap(10))
    assert s.on_diff(diff(12, 14, pu=10)) == Action.APPLIED  # ids skipped 11, but pu says nothing is missing


def test_wrong_symbol_and_venue_are_clear_errors():
    with pytest.raises(ValueError, match="'coinm'"):
        BookSync("BTCUSDT", venue="coinm")  # type: ignore[arg-type]
    s = BookSync("BTCUSDT")
    with pytest.raises(ValueError, match="'ETHUSDT'.*'BTCUSDT'"):
        s.on_diff(diff(1, 2, symbol="ETHUSDT"))
    with pytest.raises(ValueError, match="'ETHUSDT'"):
        s.on_snapshot(DepthSnapshot("ETHUSDT", 1, (), ()))
    assert s.counts["applied"] == 0 and s.stale
