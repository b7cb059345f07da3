"""Binance's "How to manage a local order book correctly", per venue, as a pure state machine around one book.

The caller feeds depth diffs and snapshots in arrival order and acts on what comes back:
- `NEED_SNAPSHOT`: fetch a REST snapshot (`/api/v3/depth?limit=5000` spot, `/fapi/v1/depth` USDⓈ-M) and pass it
  to `on_snapshot`; returned once per need (diffs that arrive meanwhile are `BUFFERED`), and again by
  `on_snapshot` when the snapshot is too old for the buffered diffs.
- `RESYNC`: continuity broke; the book is stale (kept at its last good state, diffs no longer applied), the gap is
  recorded and counted, and a new snapshot is needed exactly as for `NEED_SNAPSHOT`.
- `APPLIED`, `SYNCED` (a snapshot and the buffered diffs after it are applied), `DROPPED` (an old diff: u at or
  below the book's update id), `BUFFERED`.

Spot: drop diffs with u <= lastUpdateId; the first applied diff must straddle lastUpdateId + 1 (U <= id+1 <= u);
then every diff must have U == previous u + 1.
USDⓈ-M: drop diffs with u < lastUpdateId; the first applied diff must have U <= lastUpdateId <= u (or pu ==
lastUpdateId: it is the next event after the snapshot); then every diff must have pu == previous u.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from qs_analytics.book.book import OrderBook
from qs_common.depth import DepthDiff, DepthSnapshot, Venue

# Diffs kept while a snapshot is on its way. 100 ms diffs: 10,000 is over 16 minutes, far longer than a
# weight-limited REST call; past it the oldest go, and the straddle check then asks for a newer snapshot.
BUFFER_MAX = 10_000


class Action(StrEnum):
    NEED_SNAPSHOT = "need_snapshot"
    BUFFERED = "buffered"
    SYNCED = "synced"
    APPLIED = "applied"
    DROPPED = "dropped"
    RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class Gap:
    """A continuity break: the book was at `book_update_id`; the next diff ran `first_id`..`final_id`
    (`prev_final_id` is its pu on USDⓈ-M). `ts_event_ms` is that diff's event time."""

    symbol: str
    book_update_id: int
    first_id: int
    final_id: int
    prev_final_id: int | None
    ts_event_ms: int


class BookSync:
    """Keeps `book` exact for one symbol on one venue, or says that it cannot and what it needs."""

    def __init__(self, symbol: str, venue: Venue = "spot", buffer_max: int = BUFFER_MAX) -> None:
        if venue not in ("spot", "usdm"):
            raise ValueError(f"venue {venue!r} is not 'spot' or 'usdm'")
        self.symbol = symbol
        self.venue: Venue = venue
        self.book = OrderBook(symbol)
        self.synced = False  # the book is exact at its update id and diffs are being applied
        self._first_pending = False  # a snapshot is loaded and its first straddling diff has not come yet
        self._awaiting_snapshot = False  # NEED_SNAPSHOT / RESYNC was returned and no snapshot has come since
        self._buffer: deque[DepthDiff] = deque(maxlen=buffer_max)
        self.gaps: list[Gap] = []  # the most recent breaks, newest last (bounded)
        self.counts = {"applied": 0, "dropped": 0, "gaps": 0, "snapshots": 0, "stale_snapshots": 0}

    @property
    def stale(self) -> bool:
        """True whenever the book is not known exact: before the first sync and from a break until the resync."""
        return not self.synced

    def on_diff(self, diff: DepthDiff) -> Action:
        if diff.symbol != self.symbol:
            raise ValueError(f"depth diff for {diff.symbol!r} given to the book of {self.symbol!r}")
        if not self.synced:
            return self._buffer_diff(diff)
        book_id = self.book.last_update_id
        if self._first_pending:
            if self._too_old(diff, book_id):
                self.counts["dropped"] += 1
                return Action.DROPPED
            if not self._straddles(diff, book_id):
                return self._break(diff)
            self._first_pending = False
        else:
            if diff.final_id <= book_id:  # a repeat of what the book already holds
                self.counts["dropped"] += 1
                return Action.DROPPED
            if not self._continues(diff, book_id):
                return self._break(diff)
        self._apply(diff)
        return Action.APPLIED

    def on_snapshot(self, snap: DepthSnapshot) -> Action:
        """Load a snapshot and apply the buffered diffs after it; NEED_SNAPSHOT if it is older than the buffer."""
        if snap.symbol != self.symbol:
            raise ValueError(f"depth snapshot for {snap.symbol!r} given to the book of {self.symbol!r}")
        lid = snap.last_update_id
        pending = [d for d in self._buffer if not self._too_old(d, lid)]
        if pending and not self._straddles(pending[0], lid):
            # Spot step 3: the snapshot predates the first diff we still hold; only a newer one can join them.
            self.counts["stale_snapshots"] += 1
            self._awaiting_snapshot = True
            return Action.NEED_SNAPSHOT
        self.counts["snapshots"] += 1
        self.counts["dropped"] += len(self._buffer) - len(pending)
        self._buffer.clear()
        self._awaiting_snapshot = False
        self.book.load(snap)
        self.synced = True
        self._first_pending = not pending
        prev = lid
        for i, diff in enumerate(pending):
            if i and not self._continues(diff, prev):
                # A hole inside the buffer: keep what follows it and start over from a newer snapshot.
                self._buffer.extend(pending[i + 1 :])
                return self._break(diff)
            self._apply(diff)
            prev = diff.final_id
        return Action.SYNCED

    # ---------------------------------------------------------------- rules per venue

    def _too_old(self, diff: DepthDiff, lid: int) -> bool:
        return diff.final_id <= lid if self.venue == "spot" else diff.final_id < lid

    def _straddles(self, diff: DepthDiff, lid: int) -> bool:
        if self.venue == "spot":
            return diff.first_id <= lid + 1 <= diff.final_id
        # USDⓈ-M ids are not contiguous between events, so an event may start past the snapshot's id; its pu then
        # says whether it is the very next one (Binance's rule U <= id <= u alone would refetch for nothing).
        return diff.first_id <= lid <= diff.final_id or diff.prev_final_id == lid

    def _continues(self, diff: DepthDiff, prev_final_id: int) -> bool:
        if self.venue == "spot":
            return diff.first_id == prev_final_id + 1
        return diff.prev_final_id == prev_final_id

    # ---------------------------------------------------------------- transitions

    def _apply(self, diff: DepthDiff) -> None:
        self.book.apply(diff.bids, diff.asks, diff.final_id, diff.ts_event_ms)
        self.counts["applied"] += 1

    def _buffer_diff(self, diff: DepthDiff) -> Action:
        self._buffer.append(diff)
        if self._awaiting_snapshot:
            return Action.BUFFERED
        self._awaiting_snapshot = True
        return Action.NEED_SNAPSHOT

    def _break(self, diff: DepthDiff) -> Action:
        """Stale from here: keep the last good book for readers (flagged stale), buffer from this diff on."""
        self.gaps.append(Gap(self.symbol, self.book.last_update_id, diff.first_id, diff.final_id,
                             diff.prev_final_id, diff.ts_event_ms))
        del self.gaps[:-100]
        self.counts["gaps"] += 1
        self.synced = False
        self._first_pending = False
        self._buffer.appendleft(diff)  # before any diffs after the hole that on_snapshot kept
        self._awaiting_snapshot = True
        return Action.RESYNC
