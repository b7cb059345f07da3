"""Partitioned publishing (issue 14, `TICK_PARTITIONING=symbol`, always so with `REDIS_CLUSTER=true`): one tick
stream per symbol, `{TICKS_STREAM}:{SYM}` (qs_common/keys.py `tick_stream`), on a single node or a Redis Cluster.

Each symbol's stream has its own `StreamPublisher`: the same batching, confirmed-only retry, rewind watch and
never-trim-unacknowledged guard as the single stream (ingest/publisher.py), with its batch written on the node that
holds the stream. Dead letters, gaps and depth diffs stay single streams, written by one more Publisher before the
ticks of the same flush, so a gap entry is in Redis before the trade that closed it.

No MULTI, and no command names keys of two slots: each stream's batch goes to its own node, and the live feed's
last-trade marks are written after the ticks they describe, as an HSET of their own.

Groups: `candles` is created at id 0 on a symbol's stream before its first XADD, so a candle shard that starts later
reads everything. Analytics shards create their own groups (`analytics-kofM`) where their warm-up ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from ingest.publisher import Publisher, ensure_groups
from ingest.rewind import Lost
from qs_common import keys
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.models import Tick, Trade
from qs_common.redis_client import is_cluster
from qs_common.settings import Settings

log = logging.getLogger(__name__)

PARTITION_GROUPS = (keys.CANDLES_GROUP,)  # created by ingest on each symbol's stream; analytics shards make theirs


class StreamPublisher(Publisher):
    """One symbol's tick stream. In a Redis Cluster its batches go straight to the stream's node; after any failure
    the slot map is read again before the retry, so a failover or a moved slot is followed."""

    def __init__(self, r: aioredis.Redis, stream: str, maxlen: int, source: str,
                 groups: tuple[str, ...] = PARTITION_GROUPS) -> None:
        super().__init__(r, stream, maxlen, source)
        self.groups = groups
        self._node: Any = None
        self._stale = False

    async def setup(self) -> None:
        await ensure_groups(self.r, self.stream, self.groups)

    async def _connection(self) -> Any:
        if not is_cluster(self.r):
            return await super()._connection()
        cluster: Any = self.r
        try:
            if self._stale:
                self._stale = False
                await cluster.nodes_manager.initialize()
            self._node = cluster.get_node_from_key(self.stream)
        except RedisClusterException as exc:  # no node for the slot (yet): a Redis error the flush retries
            self._stale = True
            raise RedisError(f"{self.stream}: {exc}") from exc
        return self._node.acquire_connection()

    async def _release(self, conn: Any) -> None:
        if self._node is None:
            await super()._release(conn)
        else:
            self._node.release(conn)

    async def _send(self, batch: list[bytes], meta: list[tuple[str, int] | None], side: Any,
                    marks: dict[str, int]) -> None:
        try:
            await super()._send(batch, meta, side, marks)
        except BaseException:
            self._stale = True
            raise


class _Rewinds:
    """`watch.rewinds` of the status record: the sum over every symbol's stream."""

    def __init__(self, streams: dict[str, StreamPublisher]) -> None:
        self._streams = streams

    @property
    def rewinds(self) -> int:
        return sum(p.watch.rewinds for p in self._streams.values())


class PartitionedPublisher:
    """What ingest/loop.py uses of a Publisher, over one stream per symbol (see the module docstring)."""

    def __init__(
        self, r: aioredis.Redis, base: str, maxlen: int, source: str, deadletter_max_mb: float = 64.0,
        last_trade_key: str | None = None, depth_stream: str | None = None, depth_maxlen: int = 100_000,
        symbols: Iterable[str] = (),
    ) -> None:
        self.r = r
        self.base = base
        self.maxlen = maxlen
        self.source = source
        self.last_trade_key = last_trade_key
        # dead letters, gaps and depth: the single streams, written as by the single-stream publisher
        self.side = Publisher(r, base, maxlen, source, deadletter_max_mb, None, depth_stream, depth_maxlen)
        self.streams: dict[str, StreamPublisher] = {}
        self._unready: set[str] = set()  # symbols whose stream has no `candles` group yet
        self._marks: dict[str, int] = {}  # newest trade ms per symbol not yet in last_trade_key
        self._lock = asyncio.Lock()
        self.on_rewind: Callable[[Lost], None] | None = None
        self.watch = _Rewinds(self.streams)
        self.backlog = 0
        self.backlog_over_bound = False
        for symbol in symbols:
            self._open(symbol)

    def _open(self, symbol: str) -> StreamPublisher:
        pub = StreamPublisher(self.r, keys.tick_stream(self.base, symbol), self.maxlen, self.source)
        pub.on_rewind = self._rewound
        self.streams[symbol] = pub
        self._unready.add(symbol)
        return pub

    def _rewound(self, lost: Lost) -> None:
        if self.on_rewind is not None:
            self.on_rewind(lost)

    # -- what the loop reads -------------------------------------------------------------------------------------
    @property
    def published(self) -> int:
        return sum(p.published for p in self.streams.values())

    @property
    def dead_letters(self) -> int:
        return self.side.dead_letters

    @property
    def dead_letter_reasons(self) -> Counter[str]:
        return self.side.dead_letter_reasons

    @property
    def depth_published(self) -> int:
        return self.side.depth_published

    @property
    def redis_ok(self) -> bool:
        return self.side.redis_ok and all(p.redis_ok for p in self.streams.values())

    @property
    def buffered(self) -> int:
        return self.side.buffered + sum(p.buffered for p in self.streams.values())

    # -- what the loop writes ------------------------------------------------------------------------------------
    def add(self, tick: Tick) -> None:
        pub = self.streams.get(tick.symbol) or self._open(tick.symbol)
        pub.add(tick)
        if self.last_trade_key and isinstance(tick, Trade) and tick.ts_trade_ms > self._marks.get(tick.symbol, 0):
            self._marks[tick.symbol] = tick.ts_trade_ms

    def add_book(self, symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
                 ts_event_ms: int | None, recv_ns: int) -> None:
        pub = self.streams.get(symbol) or self._open(symbol)
        pub.add_book(symbol, update_id, bid, bid_qty, ask, ask_qty, ts_event_ms, recv_ns)

    def add_depth(self, item: DepthDiff | DepthSnapshot, recv_ns: int) -> None:
        self.side.add_depth(item, recv_ns)

    def dead_letter(self, reason: str, raw: bytes, recv_ns: int, kind: str = "invalid") -> None:
        self.side.dead_letter(reason, raw, recv_ns, kind)

    def gap(self, symbol: str, start_ms: int, end_ms: int, reason: str, venue: str) -> None:
        self.side.gap(symbol, start_ms, end_ms, reason, venue)

    async def setup(self) -> None:
        """The depth stream's `book` group and every known symbol's `candles` group, before anything is published."""
        if self.side.depth_stream is not None:
            await ensure_groups(self.r, self.side.depth_stream, (keys.BOOK_GROUP,))
        for symbol in sorted(self._unready):
            await self.streams[symbol].setup()
            self._unready.discard(symbol)

    async def flush(self, give_up_after_s: float | None = None) -> None:
        """Dead letters, gaps and depth first, then each symbol's ticks (a new symbol's group before its first
        entry), then the last-trade marks of what was written. Retries like Publisher.flush: nothing is lost."""
        async with self._lock:
            deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
            await self.side.flush(give_up_after_s)
            marks, self._marks = self._marks, {}
            for symbol, pub in list(self.streams.items()):
                if not pub.buffered:
                    continue
                if symbol in self._unready and not await self._ready(symbol, deadline):
                    continue  # shutdown and Redis still away: the flush below would give up as well
                await pub.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
            await self._write_marks(marks)

    async def _ready(self, symbol: str, deadline: float | None) -> bool:
        """Create the symbol's `candles` group, retrying a Redis error (until `deadline` at shutdown)."""
        delay = 0.1
        while True:
            try:
                await self.streams[symbol].setup()
                self._unready.discard(symbol)
                return True
            except (RedisError, OSError) as exc:
                if deadline is not None and time.monotonic() > deadline:
                    log.error("group of %s not created at shutdown: %s", self.streams[symbol].stream, exc)
                    return False
                log.warning("creating the group of %s failed, retrying: %s", self.streams[symbol].stream, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_marks(self, marks: dict[str, int]) -> None:
        """Live feed: the newest written trade per symbol; only for symbols whose ticks are all in Redis."""
        if not self.last_trade_key or not marks:
            return
        done = {s: ms for s, ms in marks.items() if not self.streams[s].buffered}
        keep = {s: ms for s, ms in marks.items() if s not in done}
        try:
            if done:
                await self.r.hset(self.last_trade_key, mapping=done)  # type: ignore[misc,arg-type]
        except (RedisError, OSError) as exc:
            log.warning("last-trade marks not written, kept for the next flush: %s", exc)
            keep.update(done)
        for s, ms in keep.items():
            if ms > self._marks.get(s, 0):
                self._marks[s] = ms

    async def check_rewind(self) -> None:
        for pub in list(self.streams.values()):
            await pub.check_rewind()

    async def trim(self) -> None:
        """Each symbol's stream bounded by STREAM_MAXLEN with the never-trim-unacknowledged guard; depth likewise."""
        for pub in list(self.streams.values()):
            await pub.trim()
        self.backlog = sum(p.backlog for p in self.streams.values())
        self.backlog_over_bound = any(p.backlog_over_bound for p in self.streams.values())
        if self.side.depth_stream is not None:
            await self.side._trim_stream(self.side.depth_stream, self.side.depth_maxlen)


def publisher_for(settings: Settings, r: aioredis.Redis, source: str, last_trade_key: str | None,
                  depth_stream: str | None, symbols: Iterable[str] = ()) -> Publisher | PartitionedPublisher:
    """The publisher of the settings' mode: one stream (TICKS_STREAM) or one per symbol (TICK_PARTITIONING)."""
    if settings.partitioned:
        return PartitionedPublisher(r, settings.ticks_stream, settings.stream_maxlen, source,
                                    settings.deadletter_max_mb, last_trade_key, depth_stream, settings.depth_maxlen,
                                    symbols)
    return Publisher(r, settings.ticks_stream, settings.stream_maxlen, source, settings.deadletter_max_mb,
                     last_trade_key, depth_stream, settings.depth_maxlen)
