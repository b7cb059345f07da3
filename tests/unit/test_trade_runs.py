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
