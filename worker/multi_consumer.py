"""A consumer group read over many streams: the per-symbol tick streams of a shard (issue 14, partitioned mode).

Which streams is the shard's business (`streams()`, asked every round: the registry moves them). Each round reads
every stream without blocking, `batch` entries at most each, in one pipeline (on a Redis Cluster redis-py sends it
node by node), and waits `IDLE_WAIT_S` only when every stream was empty. A stream that joins the set gets its group
(`join`, by default `candles`' rule: at id 0), then its own pending entries are re-read; claims of abandoned entries
run per stream as in `GroupConsumer`. A stream that leaves the set is dropped with what was read of it but not
handled: those entries stay pending in the group and are re-read if it comes back.

Unordered (candles): each stream's batch goes to the handler on its own (ids are per stream).
Ordered (analytics): the streams' entries are merged into one order, the ingest order (receive time, then stream,
then id), as one stream would have given it, so the as-of alignment of a pair's legs sees the same sequence whichever
way the ticks were partitioned. A merge must not run ahead of a stream that may still get older entries: an entry is
handed over once every stream has given an entry at least as new (the smallest of the streams' newest keys), or once
it has waited `hold_ms` since it was read (a quiet symbol must not stop the others; ingest writes a batch's streams
one after the other, so one stream briefly behind the others is normal). The rest waits in a buffer (at most
`batch` a stream). The order is exactly the ingest order whenever the streams of one ingest batch land within
`hold_ms` of each other; the price is up to `hold_ms` of added latency for a tick whose pair's other leg is quiet.
Ids in a merged batch are `TaggedId`s naming their stream.

`bound(stream)` tells the analytics warm-up where the handler's input of a stream stands, as an XREVRANGE `max`.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

from qs_common.groups import ensure_group
from worker.consumer import AnyEntry, GroupConsumer, Handler, Stopped, TaggedId

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.02  # every stream was empty: poll again this much later (a blocking read cannot span nodes)
OrderKey = tuple[int, str, int, int]
HOLD_MS = 100


def order_key(stream: str, entry_id: bytes, fields: Any) -> OrderKey:
    """The ingest order of an entry of any stream: its receive time (ns), then the stream name, then its id."""
    try:
        recv = int(fields[b"recv"]) if not isinstance(fields, list) else int(fields[fields.index(b"recv") + 1])
    except (KeyError, ValueError, IndexError, TypeError):  # not a tick: first, so it is quarantined at once
        recv = -1
    ms, _, seq = entry_id.partition(b"-")
    return recv, stream, int(ms), int(seq or 0)


def join_at_zero(r: redis.Redis, stream: str, group: str) -> None:
    ensure_group(r, stream, group)


def join_at_end(r: redis.Redis, stream: str, group: str) -> None:
    """Create `group` at the stream's newest entry (what came before is history: the warm-up reads it), or at 0 on a
    stream that does not exist yet; a group that exists is left as it is."""
    try:
        last: Any = r.xinfo_stream(stream)["last-generated-id"]
    except ResponseError:  # no such key
        last = "0"
    try:
        r.xgroup_create(stream, group, id=last, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class MultiStreamConsumer(GroupConsumer):
    def __init__(self, r: redis.Redis, streams: Callable[[], Sequence[str]], group: str, consumer: str,
                 handler: Handler, *, ordered: bool = False, hold_ms: int = HOLD_MS,
                 join: Callable[[redis.Redis, str, str], None] = join_at_zero, **options: Any) -> None:
        super().__init__(r, "", group, consumer, handler, **options)
        self.streams = streams
        self.ordered = ordered
        self.hold_s = hold_ms / 1000
        self.newest: dict[str, OrderKey] = {}  # stream -> key of the newest entry read
        self.join = join
        self.active: dict[str, bool] = {}  # stream -> its pending entries still to re-read
        self.fed: dict[str, str] = {}  # stream -> XREVRANGE max of what the handler has had
        self.buffers: dict[str, deque[tuple[OrderKey, float, AnyEntry]]] = {}  # (key, when read, entry)
        self._lock = threading.RLock()  # bound() is called by the handler, from this thread or its idle thread

    def _batch_of(self, stream: str, entries: list[AnyEntry]) -> list[AnyEntry]:
        return [(TaggedId(eid, stream), f) for eid, f in entries] if self.ordered else entries

    def _process(self, entries: list[AnyEntry], stream: str | None = None) -> None:
        super()._process(entries, stream)
        for eid, _ in entries:  # after the handler: the warm-up must not read what it has not had
            self.fed[str(getattr(eid, "stream", stream))] = eid.decode()

    # -- the set of streams ----------------------------------------------------------------------------------

    def _position(self, stream: str) -> str:
        """Where the group stands on `stream`, as an XREVRANGE max: before its oldest pending entry, else at the
        last entry delivered."""
        pending: Any = self.r.xpending(stream, self.group)
        if pending and pending.get("pending"):
            low = pending["min"]
            return "(" + (low.decode() if isinstance(low, bytes) else str(low))
        for g in self.r.xinfo_groups(stream):  # type: ignore[union-attr]
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                last = g["last-delivered-id"]
                return last.decode() if isinstance(last, bytes) else str(last)
        return "0"

    def _add(self, stream: str) -> None:
        self.join(self.r, stream, self.group)
        self.fed[stream] = self._position(stream)
        self.buffers[stream] = deque()
        self.active[stream] = True

    def bound(self, stream: str) -> str:
        """XREVRANGE max of what the handler has had of `stream`, adding (joining) the stream if it is new: the
        warm-up of a pair reads its legs' history up to here, and the consumer delivers what follows."""
        with self._lock:
            if stream not in self.active:
                self._add(stream)
            return self.fed[stream]

    def _sync(self) -> None:
        wanted = list(dict.fromkeys(self.streams()))
        with self._lock:
            for stream in [s for s in self.active if s not in wanted]:
                for table in (self.active, self.fed, self.buffers, self.newest):
                    table.pop(stream, None)  # type: ignore[attr-defined]
            for stream in wanted:
                if stream not in self.active:
                    self._add(stream)
            todo = [s for s, pending in self.active.items() if pending]
        for stream in todo:
            self._own_pending(stream)
            self.active[stream] = False

    # -- reading ---------------------------------------------------------------------------------------------

    def _read_round(self) -> int:
        """One non-blocking read of every stream that has room; entries handed to the handler."""
        with self._lock:  # the handler's idle thread may add a stream (bound) meanwhile
            wanted = [s for s in self.active if len(self.buffers[s]) < self.batch]
        if not wanted:
            return self._hand_over()
        client = self._raw if self._raw is not None else self.r
        pipe = client.pipeline(transaction=False)
        for stream in wanted:
            pipe.xreadgroup(self.group, self.consumer, {stream: ">"}, count=self.batch)
        replies = pipe.execute(raise_on_error=False)
        got = 0
        for stream, reply in zip(wanted, replies, strict=True):
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                self.active[stream] = True  # the stream or its group went away: join again, then re-read
                self.join(self.r, stream, self.group)
                continue
            if isinstance(reply, Exception):
                raise reply
            entries = self._reply_entries(reply)
            got += len(entries)
            if not self.ordered:
                self._process(entries, stream)
            elif stream in self.buffers:
                self._buffer(stream, entries)
        return self._hand_over() if self.ordered else got

    def _buffer(self, stream: str, entries: list[AnyEntry]) -> None:
        if not entries:
            return
        now = time.monotonic()
        keyed = [(order_key(stream, eid, f), now, (TaggedId(eid, stream), f)) for eid, f in entries]
        self.buffers[stream].extend(keyed)
        self.newest[stream] = keyed[-1][0]

    def _watermark(self) -> Any:
        """The newest key that may be handed over: every stream has given one as new, or an entry that new has
        waited hold_ms (the empty tuple, older than any key: nothing yet)."""
        mark: Any = min((self.newest.get(s, ()) for s in self.active), default=())
        waited = time.monotonic() - self.hold_s
        for buf in self.buffers.values():
            aged = None
            for key, read_at, _ in buf:  # read in order: the aged entries are a prefix
                if read_at > waited:
                    break
                aged = key
            if aged is not None and aged > mark:
                mark = aged
        return mark

    def _reply_entries(self, reply: Any) -> list[AnyEntry]:
        if not reply:
            return []
        if self._raw is not None:  # RESP2: [[stream, entries]]; RESP3: {stream: entries}
            entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
            return [(e[0], e[1]) for e in entries if e[1]]
        return [(eid, f) for eid, f in self._entries(reply[0][1]) if f is not None]

    def _hand_over(self) -> int:
        """Merge the buffered entries up to the watermark, in ingest order, into one batch for the handler."""
        with self._lock:  # never while the handler runs: it may wait for this lock in `bound`
            mark = self._watermark()
            runs = []
            for buf in self.buffers.values():
                run = []
                while buf and buf[0][0] <= mark:
                    key, _, entry = buf.popleft()
                    run.append((key, entry))
                if run:
                    runs.append(run)
        if not runs:
            return 0
        merged = [entry for _, entry in heapq.merge(*runs, key=lambda item: item[0])]
        for start in range(0, len(merged), self.batch):
            self._process(merged[start:start + self.batch])
        return len(merged)

    def _claim_round(self) -> None:
        if time.monotonic() - self._last_claim > self.claim_idle_ms / 1000:
            self._last_claim = time.monotonic()
            for stream in list(self.active):
                self._claim_abandoned(stream)

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                self._set_state("running")
                while not stop.is_set():
                    self._sync()
                    self._claim_round()
                    if not self._read_round():
                        self._wait(IDLE_WAIT_S)
                return
            except Stopped:
                return
            except (RedisError, OSError) as exc:
                self._set_state("redis-down", str(exc))
                with self._lock:  # what was read and not handled is pending: join every stream again
                    for stream in self.active:
                        self.active[stream] = True
                        self.buffers[stream].clear()
                stop.wait(1.0)

    def lag(self) -> dict[str, int | None]:
        """Summed over the streams: entries not yet delivered to the group, and delivered but not acknowledged."""
        streams = list(self.active)
        pipe = self.r.pipeline(transaction=False)
        for stream in streams:
            pipe.xinfo_groups(stream)
        lag = pending = 0
        for groups in pipe.execute(raise_on_error=False):
            if isinstance(groups, Exception):
                continue
            for g in groups:
                name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                if name == self.group:
                    lag += g.get("lag") or 0
                    pending += g.get("pending") or 0
        return {"lag": lag, "pending": pending, "streams": len(streams)}
