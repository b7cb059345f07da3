"""An analytics shard (issue 14): `SHARD=k/M` with `--role analytics` in partitioned mode.

It owns the pairs with crc32("Y/X") mod M = k and the symbols with crc32(symbol) mod M = k (their per-symbol
statistics, top of book and symbol alert rules: exactly one shard writes each symbol's), and reads the tick streams
of its pairs' legs and of its symbols with its own consumer group `analytics-{k}of{M}` (`analytics` for 0/1), so
every pair's state lives in one process.

A stream joins with the group created at its newest entry: what came before is history, which the warm-up replays
into the new engines (read back from each leg's stream up to where the consumer's input stands, merged in ingest
order like the live reading). On a restart the group exists: the warm-up reads up to the group's position (before
its oldest pending entry) and the consumer re-reads the pending ones, so no tick reaches an engine twice.

Groups `analytics-*of*` of another shard count are left behind by a resize; one whose consumers have all been idle
for CLAIM_IDLE_MS x 10 (or that has had none for as long, seen by this process) is deleted when a stream joins, so a
dead group never holds back the stream's trimming.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.exceptions import ResponseError

from qs_common import codec, keys
from qs_common.partition import ShardSpec
from qs_common.settings import Settings
from worker import warmup
from worker.consumer import Entry, TaggedId
from worker.multi_consumer import join_at_end, order_key
from worker.pair_slots import PairSlot

log = logging.getLogger(__name__)

_SHARD_GROUP = re.compile(r"analytics-(\d+)of(\d+)")
STALE_FACTOR = 10


def group_name(spec: ShardSpec) -> str:
    return keys.ANALYTICS_GROUP if spec.whole else keys.analytics_group(spec.index, spec.count)


def status_name(spec: ShardSpec) -> str:
    base = keys.STATUS_WORKER_ANALYTICS
    return base if spec.whole else f"{base}-{keys.shard_label(spec.index, spec.count)}"


class StaleGroups:
    """Deletes the analytics groups of other shard counts that nobody reads any more."""

    def __init__(self, spec: ShardSpec, idle_ms: int) -> None:
        self.spec = spec
        self.idle_ms = idle_ms
        self._empty_since: dict[tuple[str, str], float] = {}

    def sweep(self, r: redis.Redis, stream: str) -> None:
        for g in r.xinfo_groups(stream):  # type: ignore[union-attr]
            name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
            m = _SHARD_GROUP.fullmatch(name)
            if m is None or int(m.group(2)) == self.spec.count or not self._stale(r, stream, name):
                continue
            r.xgroup_destroy(stream, name)
            log.info("deleted consumer group %s of %s: no consumer read it for %d s (another shard count)",
                     name, stream, self.idle_ms // 1000)

    def _stale(self, r: redis.Redis, stream: str, group: str) -> bool:
        consumers: Any = r.xinfo_consumers(stream, group)
        if consumers:
            return all(int(c.get("inactive", c.get("idle", 0)) or 0) > self.idle_ms for c in consumers)
        first = self._empty_since.setdefault((stream, group), time.monotonic())
        return (time.monotonic() - first) * 1000 > self.idle_ms


class AnalyticsShard:
    """What the shard owns, its streams, and the warm-up over them. `bound(stream)` is the consumer's (set once the
    consumer exists)."""

    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        self.settings = settings
        self.r = r
        self.spec = ShardSpec.parse(settings.shard)
        self.partitioned = settings.partitioned
        self.bound: Callable[[str], str] | None = None
        self.stale = StaleGroups(self.spec, settings.claim_idle_ms * STALE_FACTOR)

    def owns_pair(self, pid: str) -> bool:
        return self.spec.owns(pid)

    def owns_symbol(self, symbol: str) -> bool:
        return self.spec.owns(symbol)

    def stream(self, symbol: str) -> str:
        return keys.tick_stream(self.settings.ticks_stream, symbol)

    def streams(self, slots: Iterable[PairSlot], symbols: Iterable[str]) -> list[str]:
        """The tick streams to read: the owned pairs' legs and the owned symbols."""
        legs = [leg for slot in slots for leg in (slot.settings.y, slot.settings.x)]
        owned = [s for s in symbols if self.owns_symbol(s)]
        return [self.stream(s) for s in sorted(set(legs) | set(owned))]

    def join(self, r: redis.Redis, stream: str, group: str) -> None:
        with contextlib.suppress(ResponseError):  # no such stream yet
            self.stale.sweep(r, stream)
        join_at_end(r, stream, group)

    def warm(self, slots: list[PairSlot], _before: bytes | None) -> dict[str, warmup.Warmed]:
        """Replay each new engine's legs' recent history (partitioned mode's `LivePairs.warm`)."""
        if not slots:
            return {}
        assert self.bound is not None, "the consumer sets bound before the first registry poll"
        want: dict[str, int] = {}
        for slot in slots:
            for leg in (slot.settings.y, slot.settings.x):
                want[leg] = max(want.get(leg, 0), warmup.wanted(slot))
        history: list[tuple[Any, Entry]] = []
        for leg, n in sorted(want.items()):
            stream = self.stream(leg)
            history.extend((order_key(stream, eid, f), (TaggedId(eid, stream), f))
                           for eid, f in self._read_back(stream, self.bound(stream), n))
        history.sort(key=lambda item: item[0])
        batch = codec.decode_batch([e for _, e in history], order=True, times=True)
        out = {}
        for slot in slots:
            slot.skip_until = None  # the history ends where the consumer's input starts: nothing to skip
            out[slot.pair] = warmup.replay(slot, batch)
        log.info("warmed %d pair(s) from %d recent ticks of %d stream(s): %s", len(slots), len(history), len(want),
                 ", ".join(f"{p} ({w.observations} obs)" for p, w in out.items()))
        return out

    def _read_back(self, stream: str, bound: str, n: int) -> list[Entry]:
        """The stream's newest `n` entries (at most warmup.MAX_ENTRIES) up to `bound` (an XREVRANGE max), oldest
        first."""
        n = min(n, warmup.MAX_ENTRIES)
        pages: list[list[Entry]] = []
        hi, read = bound, 0
        while read < n:
            page: list[Entry] = self.r.xrevrange(stream, max=hi, min="-", count=min(warmup.PAGE, n - read))  # type: ignore[assignment]
            if not page:
                break
            pages.append(page)
            read += len(page)
            hi = "(" + page[-1][0].decode()
        return [e for page in reversed(pages) for e in reversed(page)]
