"""The registry as the analytics consumer runs it: the active symbols and one warmed engine per active pair.

`LivePairs.poll` reads `{control}:version` at most once a second (one GET); when it moved, it rereads the registry
and applies the difference: a new pair gets an aligner and engine, a removed one is dropped, a pair whose engine
settings changed gets a fresh engine with the new PairConfig, and every new engine is warmed from the tick
stream's recent history (worker/warmup.py) before the consumer goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from qs_common import control
from qs_common.settings import Settings
from worker import warmup
from worker.pair_slots import PairSlot, StreamId, labels, new_slot, plan, routes

log = logging.getLogger(__name__)

POLL_S = 1.0  # the "within a second"


@dataclass
class Change:
    """What one poll changed: symbols added and removed, and the warm-up of each new engine (pair id ->)."""

    symbols_added: tuple[str, ...] = ()
    symbols_removed: tuple[str, ...] = ()
    warmed: dict[str, warmup.Warmed] = field(default_factory=dict)
    removed_pairs: tuple[str, ...] = ()


class LivePairs:
    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        self.settings = settings
        self.r = r
        self.watcher = control.Watcher(r)
        self.slots: dict[str, PairSlot] = {}
        self.symbols: tuple[str, ...] = ()
        self.trade_routes: dict[str, list[PairSlot]] = {}
        self.mid_routes: dict[str, list[PairSlot]] = {}
        self.skipping: list[PairSlot] = []  # slots whose skip_until is set (just warmed)
        self._polled = -math.inf
        self._seeded = False
        # Issue 14: an analytics shard keeps only the pairs it owns, and warms them from its legs' streams
        self.owns: Callable[[str], bool] = lambda pid: True
        self.warm: Callable[[list[PairSlot], bytes | None], dict[str, warmup.Warmed]] = self._warm_one_stream

    def _warm_one_stream(self, fresh: list[PairSlot], before: bytes | None) -> dict[str, warmup.Warmed]:
        return warmup.warm(self.r, self.settings.ticks_stream, fresh, before)

    def poll(self, before: Callable[[], bytes | None], force: bool = False) -> Change | None:
        """Apply a registry change, at most once a second (`force`: now); None when nothing changed.

        `before()` gives the first stream id the consumer has not fed yet (None: every entry was fed): the warm-up
        replays what lies before it."""
        now = time.monotonic()
        if not force and now - self._polled < POLL_S:
            return None
        self._polled = now
        if not self._seeded:  # the service seeds at start-up; a handler used alone (tests, benches) does it here
            control.seed(self.r, self.settings)
            self._seeded = True
        try:
            polled = self.watcher.poll()
            return None if polled is None else self._apply(*polled, before)
        except BaseException:  # Redis went away mid-change: read and apply the whole change again next time
            self.watcher.seen = None
            self._polled = -math.inf
            raise

    def _apply(self, symbols: tuple[str, ...], pairs: dict[str, control.PairSettings],
               before: Callable[[], bytes | None]) -> Change:
        pairs = {pid: ps for pid, ps in pairs.items() if self.owns(pid)}
        p = plan({pid: s.settings for pid, s in self.slots.items()}, pairs)
        fresh = [new_slot(self.settings, pairs[pid]) for pid in p.fresh]
        # the only step that can fail (Redis): before anything changes, so a failed change is applied whole later
        warmed = self.warm(fresh, before()) if fresh else {}
        for pid in p.removed:
            del self.slots[pid]
        for pid in p.relabelled:  # z bands only: the engine keeps its state
            self.slots[pid].settings = pairs[pid]
            self.slots[pid].labels = labels(pairs[pid])
        for slot in fresh:
            self.slots[slot.pair] = slot
        self.trade_routes, self.mid_routes = routes(self.slots)
        self.skipping = [s for s in self.slots.values() if s.skip_until is not None]
        added = tuple(s for s in symbols if s not in self.symbols)
        removed = tuple(s for s in self.symbols if s not in symbols)
        self.symbols = symbols
        if p != plan({}, {}) or added or removed:
            log.info("registry: %d symbols, %d pairs (added %s, removed %s, rebuilt %s, relabelled %s)",
                     len(symbols), len(self.slots), list(p.added), list(p.removed), list(p.rebuilt),
                     list(p.relabelled))
        return Change(added, removed, warmed, p.removed)

    def settle(self, first_id: StreamId) -> None:
        """Before a batch whose smallest id is `first_id`: slots replayed only up to an earlier id need no
        per-tick check any more."""
        for slot in self.skipping:
            if slot.skip_until is not None and slot.skip_until < first_id:
                slot.skip_until = None
        self.skipping = [s for s in self.skipping if s.skip_until is not None]
