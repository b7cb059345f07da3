"""RewindWatch: the tick stream going back below our confirmed writes, and which trades went with it."""

from __future__ import annotations

from ingest.rewind import RewindWatch, StreamState, stream_state


def confirm(watch: RewindWatch, before: StreamState, first_ms: int, n: int) -> list[bytes]:
    ids = [f"{first_ms + i}-0".encode() for i in range(n)]
    meta = [("BTCUSDT" if i % 2 else "ETHUSDT", 1_000 + first_ms + i) if i % 3 else None for i in range(n)]
    watch.confirmed(before, ids, meta)
    return ids


def test_no_rewind_while_the_stream_only_grows():
    w = RewindWatch()
    assert w.check(StreamState((0, 0), 0)) is None  # nothing confirmed yet: nothing to compare
    confirm(w, StreamState((0, 0), 0), 100, 10)
    assert (w.last_id, w.added) == ((109, 0), 10)
    assert w.check(StreamState((109, 0), 10)) is None
    assert w.check(StreamState((500, 3), 42)) is None  # more than we wrote is not a loss
    assert w.rewinds == 0


def test_a_lower_last_id_or_entries_added_reports_the_earliest_lost_trade_per_symbol():
    w = RewindWatch()
    confirm(w, StreamState((0, 0), 0), 100, 10)  # ids 100..109, trades at i = 1, 2, 4, 5, 7, 8
    lost = w.check(StreamState((104, 0), 5))  # 105..109 gone
    assert lost is not None and w.rewinds == 1
    assert lost.first_trade_ms == {"ETHUSDT": 1_105 + 3, "BTCUSDT": 1_105}  # i=5 (BTC), i=8 (ETH)
    assert not lost.beyond_memory and "BTCUSDT from 1105 ms" in lost.describe()
    assert (w.last_id, w.added) == ((104, 0), 5)  # the new baseline: reported once
    assert w.check(StreamState((104, 0), 5)) is None


def test_entries_added_catches_a_rewind_that_new_ids_hide():
    w = RewindWatch()
    confirm(w, StreamState((0, 0), 0), 100, 10)
    lost = w.check(StreamState((900, 0), 7))  # new writes moved the id past ours, but 3 entries are missing
    assert lost is not None and set(lost.first_trade_ms) == {"BTCUSDT", "ETHUSDT"}


def test_a_redis_that_lost_everything():
    w = RewindWatch()
    confirm(w, StreamState((0, 0), 0), 100, 10)
    lost = w.check(stream_state(None))
    assert lost is not None and lost.beyond_memory and lost.first_trade_ms == {"BTCUSDT": 1_101, "ETHUSDT": 1_102}


def test_stream_state_reads_raw_and_parsed_replies():
    raw = [b"length", 3, b"last-generated-id", b"17-2", b"entries-added", 9, b"groups", 2]
    assert stream_state(raw) == StreamState((17, 2), 9)
    assert stream_state({"last-generated-id": "17-2"}) == StreamState((17, 2), None)  # Redis 6
