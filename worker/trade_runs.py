"""The exact set of trade ids merged into the candles, per symbol, kept as runs of consecutive ids.

De-duplication (exactly-once under redelivery, claims, restarts and replays) must tell whether a trade id was
already merged. A table of every trade would do (48 h of BTCUSDT + ETHUSDT is ~8 M rows and an index insert per
trade); Binance numbers each symbol's trades 1, 2, 3, ..., so the same set is a handful of runs [first, last].

The set stays exact whatever the ids are: a run is only ever made of ids that were stored, and two runs merge
only when they touch (last + 1 == first). Nothing is assumed about order: an id below the newest (an older file
replayed, a claimed batch of another consumer, a rewind) is looked up like any other, so a watermark alone is
only the fast path (a batch whose ids are all above the newest run needs no lookup). Ids that are not
consecutive (tick files' derived ids, gaps in the feed) only make more runs, never a wrong answer.

Each run also keeps the newest trade time in it, for pruning (`TRADE_RETENTION_H`) and for "the newest trade
the store has applied" (the kline check). Pure: arrays in, arrays out; the store writes the changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Runs:
    """One symbol's runs, sorted by `first`, never touching or overlapping."""

    first: I64
    last: I64
    newest_ms: I64  # the newest trade time among the run's trades

    @staticmethod
    def empty() -> Runs:
        e = np.empty(0, np.int64)
        return Runs(e, e, e)

    def __len__(self) -> int:
        return len(self.first)

    def ids(self) -> int:
        """How many trade ids the runs hold."""
        return int((self.last - self.first).sum()) + len(self)


@dataclass(frozen=True, slots=True)
class Change:
    """What a batch does to one symbol's runs: rows to delete (by `first`), rows to insert, the result."""

    removed_first: I64
    added: Runs
    after: Runs


def unseen(runs: Runs, ids: I64) -> npt.NDArray[np.bool_]:
    """Per id: True when it is in no run (not yet merged). Any order, any values."""
    if len(runs) == 0 or len(ids) == 0:
        return np.ones(len(ids), np.bool_)
    if int(ids.min()) > int(runs.last[-1]):  # the watermark: everything newer than the newest run
        return np.ones(len(ids), np.bool_)
    at = np.searchsorted(runs.first, ids, side="right") - 1
    inside = (at >= 0) & (ids <= runs.last[np.maximum(at, 0)])
    return ~inside


def _runs_of(ids: I64, times_ms: I64) -> Runs:
    """Sorted unique ids -> their runs of consecutive ids, each with its newest time."""
    starts = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = np.concatenate(([0], starts)).astype(np.intp)
    ends = np.concatenate((starts[1:] - 1, [len(ids) - 1])).astype(np.intp)
    return Runs(ids[starts], ids[ends], np.maximum.reduceat(times_ms, starts))


def _coalesce(first: I64, last: I64, newest: I64) -> Runs:
    """Runs sorted by first and disjoint -> the same set with touching runs joined."""
    order = np.argsort(first, kind="stable")
    first, last, newest = first[order], last[order], newest[order]
    # a run starts a group unless it begins right after the previous one ends (INT64_MAX + 1 wraps: no join)
    joins = np.empty(len(first), np.bool_)
    joins[0] = False
    joins[1:] = (last[:-1] != INT64_MAX) & (first[1:] == last[:-1] + 1)
    starts = np.flatnonzero(~joins)
    ends = np.concatenate((starts[1:] - 1, [len(first) - 1]))
    return Runs(first[starts], last[ends], np.maximum.reduceat(newest, starts))


def add(runs: Runs, ids: I64, times_ms: I64) -> Change:
    """Merge new ids (none of them in `runs`; sorted, unique) with their trade times into the runs.

    Only the runs next to the new ids can change: the rest is copied, and the store rewrites only the changed
    rows (live trades: the newest run, one row).
    """
    new = _runs_of(ids, times_ms)
    lo_id, hi_id = int(ids[0]), int(ids[-1])
    lo = int(np.searchsorted(runs.last, lo_id - 1, side="left"))  # first run that may touch or follow
    hi = len(runs) if hi_id == INT64_MAX else int(np.searchsorted(runs.first, hi_id + 1, side="right"))
    merged = _coalesce(np.concatenate((runs.first[lo:hi], new.first)), np.concatenate((runs.last[lo:hi], new.last)),
                       np.concatenate((runs.newest_ms[lo:hi], new.newest_ms)))
    after = Runs(np.concatenate((runs.first[:lo], merged.first, runs.first[hi:])),
                 np.concatenate((runs.last[:lo], merged.last, runs.last[hi:])),
                 np.concatenate((runs.newest_ms[:lo], merged.newest_ms, runs.newest_ms[hi:])))
    return Change(runs.first[lo:hi].copy(), merged, after)


def prune(runs: Runs, retention_ms: int) -> Runs:
    """Drop runs whose newest trade is older than `retention_ms` before the symbol's newest trade."""
    if len(runs) == 0:
        return runs
    keep = runs.newest_ms >= int(runs.newest_ms.max()) - retention_ms
    return Runs(runs.first[keep], runs.last[keep], runs.newest_ms[keep])
