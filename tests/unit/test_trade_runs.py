"""The trade-id runs against a plain Python set: the same membership answers, whatever the order and the ids."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import trade_runs
from worker.trade_runs import INT64_MAX, Runs


def expand(runs: Runs) -> set[int]:
    return {i for f, la in zip(runs.first.tolist(), runs.last.tolist(), strict=True) for i in range(f, la + 1)}


def feed(runs: Runs, batch: list[tuple[int, int]]) -> tuple[Runs, list[bool]]:
    """One batch of (id, time): the unseen answer per row, then the new ids merged (as the store does)."""
    ids = np.array([i for i, _ in batch], np.int64)
    times = np.array([t for _, t in batch], np.int64)
    fresh = trade_runs.unseen(runs, ids)
    new_ids, first_at = np.unique(ids[fresh], return_index=True)
    if len(new_ids):
        runs = trade_runs.add(runs, new_ids, times[fresh][first_at]).after
    return runs, fresh.tolist()


def check_invariants(runs: Runs) -> None:
    assert np.all(runs.first <= runs.last)
    assert np.all(runs.first[1:] > runs.last[:-1] + 1)  # sorted, disjoint, never touching


ids_strategy = st.lists(st.lists(st.integers(1, 60), min_size=1, max_size=25), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(batches=ids_strategy)
def test_runs_answer_like_a_set(batches):
    runs, seen = Runs.empty(), set()
    for batch in batches:
        runs, fresh = feed(runs, [(i, i * 10) for i in batch])
        assert fresh == [i not in seen for i in batch]
        seen |= set(batch)
        assert expand(runs) == seen
        check_invariants(runs)


def test_older_ids_below_the_newest_are_not_taken_for_duplicates():
    # a replay of an older file after newer data: ids below the watermark that were never stored
    runs, _ = feed(Runs.empty(), [(i, i) for i in range(1000, 1100)])
    runs, fresh = feed(runs, [(i, i) for i in range(900, 1001)])
    assert fresh == [True] * 100 + [False]
    assert len(runs) == 1 and (int(runs.first[0]), int(runs.last[0])) == (900, 1099)


def test_a_gap_filled_later_joins_three_runs_into_one():
    runs, _ = feed(Runs.empty(), [(1, 5), (2, 6), (5, 9), (6, 10)])
    assert len(runs) == 2
    change = trade_runs.add(runs, np.array([3, 4], np.int64), np.array([7, 8], np.int64))
    assert change.removed_first.tolist() == [1, 5]
    added = change.added
    assert (added.first.tolist(), added.last.tolist(), added.newest_ms.tolist()) == ([1], [6], [10])


def test_newest_times_and_pruning():
    runs, _ = feed(Runs.empty(), [(1, 100), (2, 300), (10, 1_000), (20, 5_000)])
    assert runs.newest_ms.tolist() == [300, 1_000, 5_000]
    assert expand(trade_runs.prune(runs, 4_000)) == {10, 20}  # kept: newest >= 5,000 - 4,000


def test_ids_at_the_int64_limit():
    top = INT64_MAX
    runs, fresh = feed(Runs.empty(), [(top, 1), (top - 1, 1), (1, 1)])
    assert fresh == [True, True, True] and expand(runs) == {1, top - 1, top}
    runs, fresh = feed(runs, [(top, 2), (top - 2, 2)])
    assert fresh == [False, True] and len(runs) == 2


def test_derived_ids_of_tick_files_stay_exact():
    # timestamp_ms * 1,000,000 + ordinal: mostly one run per millisecond
    ids = [ms * 1_000_000 + k for ms in range(1_723_161_000_000, 1_723_161_000_050) for k in range(ms % 3)]
    runs, fresh = feed(Runs.empty(), [(i, i // 1_000_000) for i in ids])
    assert all(fresh) and expand(runs) == set(ids)
    _, again = feed(runs, [(i, i // 1_000_000) for i in ids[::-1]])
    assert not any(again)


def test_a_file_with_the_old_table_of_every_trade_is_turned_into_runs_once(tmp_path):
    import duckdb

    from worker.candles import trades_frame
    from worker.store import CandleStore

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE trades (symbol VARCHAR NOT NULL, trade_id BIGINT NOT NULL, "
                "price DECIMAL(38, 8) NOT NULL, qty DECIMAL(38, 8) NOT NULL, trade_time_ms BIGINT NOT NULL, "
                "buyer_is_maker BOOLEAN NOT NULL, "
                "PRIMARY KEY (symbol, trade_id))")
    stored = [("BTCUSDT", i, i * 10) for i in (*range(1, 6), *range(8, 10))] + [("ETHUSDT", 100, 7)]
    con.executemany("INSERT INTO trades VALUES (?, ?, 1, 1, ?, false)", stored)
    con.close()
    store = CandleStore(path)
    try:
        assert {s: (r.first.tolist(), r.last.tolist(), r.newest_ms.tolist()) for s, r in store.seen.items()} == {
            "BTCUSDT": ([1, 8], [5, 9], [50, 90]), "ETHUSDT": ([100], [100], [7])}
        assert store.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'trades'"
                                 ).fetchall() == [(0,)]
        assert store.newest_trade_ms() == {"BTCUSDT": 90, "ETHUSDT": 7}
        again = trades_frame(["BTCUSDT"] * 3, [5, 6, 9], ["1", "2", "3"], ["1", "1", "1"], [50, 60, 90], [False] * 3)
        merged = store.apply_trades(again)  # 5 and 9 were stored before the upgrade: only 6 is new
        assert merged.filter(merged["interval"] == "1m")["trades"].to_list() == [1]
        assert store.seen["BTCUSDT"].first.tolist() == [1, 8] and store.seen["BTCUSDT"].last.tolist() == [6, 9]
    finally:
        store.close()
    reopened = CandleStore(path)  # the runs in the file are the ones held in memory
    try:
        assert reopened.seen["BTCUSDT"].last.tolist() == [6, 9] and reopened.newest_trade_ms()["BTCUSDT"] == 90
    finally:
        reopened.close()
