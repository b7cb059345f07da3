"""Publish ticks to the Redis tick stream in pipelined batches, and keep the stream bounded safely.

Trimming never deletes an entry that a consumer group has not yet read and acknowledged: the cut is the
oldest entry that some group still needs (its oldest pending entry, or the first entry after its last
delivered one). When the unread backlog alone exceeds the bound, nothing is trimmed and it is reported.

Redis can go back in time (appendfsync everysec loses up to a second on an OS crash; a restart without
persistence loses everything). Every batch therefore starts with `XINFO STREAM`: if the stream's last id or
`entries-added` is below what our own XADDs had confirmed, acknowledged writes were lost. The publisher
remembers the recent confirmed trades (`RewindWatch`), so it can say from when, per symbol, and reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.exceptions import RedisError, ResponseError

from ingest.rewind import Lost, RewindWatch, StreamState, parse_id, stream_state
from qs_common import codec, deadletters, keys
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.groups import aensure_group
from qs_common.models import Tick, Trade

log = logging.getLogger(__name__)

RAW_LIMIT = deadletters.RAW_LIMIT


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


async def ensure_groups(r: aioredis.Redis, stream: str, groups: tuple[str, ...]) -> None:
    """Create the consumer groups at id 0, so entries published before a worker starts are kept for it."""
    for group in groups:
        await aensure_group(r, stream, group)


async def safe_trim_boundary(r: aioredis.Redis, stream: str) -> tuple[int, int] | None:
    """The oldest entry id some consumer group still needs; None if no group exists."""
    groups: list[dict[str, Any]] = await r.xinfo_groups(stream)  # type: ignore[assignment]
    if not groups:
        return None
    needed: list[tuple[int, int]] = []
    for g in groups:
        name = g["name"]
        ms, seq = parse_id(g["last-delivered-id"])
        oldest_unread = (ms, seq + 1)
        if g["pending"]:
            summary: Any = await r.xpending(stream, name)
            # acknowledged between the two calls: then nothing is pending any more
            needed.append(parse_id(summary["min"]) if summary["min"] is not None else oldest_unread)
        else:
            needed.append(oldest_unread)
    return min(needed)


async def read_replies(conn: Any, n: int, out: list[Any]) -> None:
    """Append the next `n` replies on `conn` to `out`, raising at the first error reply (what came before it
    stays in `out`: Redis executed those commands).

    Straight from the connection's hiredis reader, one socket read per buffer: `conn.read_response()` per reply
    (a timeout context and two coroutines each) cost ~5 µs a tick, a third of ingest's time per frame."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    if not isinstance(reader, hiredis.Reader):  # not redis-py's hiredis parser: the general way
        for _ in range(n):
            out.append(await conn.read_response())
        return
    read_more = conn._parser.read_from_socket
    async with asyncio.timeout(conn.socket_timeout):  # what read_response applies per reply, for the whole
        while len(out) < n:
            reply = reader.gets()
            if reply is NOT_ENOUGH_DATA:
                await read_more()
            elif isinstance(reply, Exception):  # an error reply: the parser hands it over, raising is ours
                raise reply
            else:
                out.append(reply)


Side = tuple[str, dict[str, str | int | bytes], int | None]  # stream, fields, maxlen (None: trimmed safely)


class Publisher:
    def __init__(
        self, r: aioredis.Redis, stream: str, maxlen: int, source: str, deadletter_max_mb: float = 64.0,
        last_trade_key: str | None = None, depth_stream: str | None = None, depth_maxlen: int = 100_000,
    ) -> None:
        self.r = r
        # Depth diffs and snapshots (DEPTH on) go to their own stream, after the dead letters and gaps queued
        # before them; never cut by MAXLEN (an unread diff lost is a book resync), trimmed safely like ticks.
        self.depth_stream = depth_stream
        self.depth_maxlen = depth_maxlen
        self.depth_published = 0
        self.stream = stream
        self.maxlen = maxlen
        self.source = source
        self.dead_maxlen = deadletters.maxlen(deadletter_max_mb)
        # Where the newest published trade time per symbol is kept, so a restart after a crash knows
        # from when it lost trades (None: not kept, e.g. for replays).
        self.last_trade_key = last_trade_key
        self._stream_b = stream.encode()
        self._buffer: list[bytes] = []  # packed XADD commands
        self._meta: list[tuple[str, int] | None] = []  # per buffered command: (symbol, trade ms) of a trade
        self._side: list[Side] = []
        self._marks: dict[str, int] = {}  # newest trade ms per symbol not yet written to last_trade_key
        self._info_cmd = hiredis.pack_command((b"XINFO", b"STREAM", self._stream_b))  # type: ignore[arg-type]
        self._lock = asyncio.Lock()
        self.watch = RewindWatch()
        self.on_rewind: Callable[[Lost], None] | None = None  # told which trades Redis lost
        self.published = 0
        self.dead_letters = 0
        self.dead_letter_reasons: Counter[str] = Counter()
        self.backlog = 0
        self.backlog_over_bound = False
        self.redis_ok = True

    async def setup(self) -> None:
        await ensure_groups(self.r, self.stream, keys.TICK_GROUPS)
        if self.depth_stream is not None:
            await ensure_groups(self.r, self.depth_stream, (keys.BOOK_GROUP,))

    def add_depth(self, item: DepthDiff | DepthSnapshot, recv_ns: int) -> None:
        assert self.depth_stream is not None, "depth published without a depth stream"
        self._side.append((self.depth_stream, codec.encode_depth(item, recv_ns), None))  # type: ignore[arg-type]

    def add(self, tick: Tick) -> None:
        self._buffer.append(codec.pack_xadd(self._stream_b, tick))
        if isinstance(tick, Trade):
            self._meta.append((tick.symbol, tick.ts_trade_ms))
            if tick.ts_trade_ms > self._marks.get(tick.symbol, 0):
                self._marks[tick.symbol] = tick.ts_trade_ms
        else:
            self._meta.append(None)

    def add_book(self, symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
                 ts_event_ms: int | None, recv_ns: int) -> None:
        """`add(BookTicker(...))` from the values (ingest.parser.take_frame): no tick object on the hot path."""
        self._buffer.append(codec.pack_book_xadd(
            self._stream_b, symbol, update_id, bid, bid_qty, ask, ask_qty, ts_event_ms, recv_ns))
        self._meta.append(None)

    def dead_letter(self, reason: str, raw: bytes, recv_ns: int, kind: str = "invalid") -> None:
        self.dead_letters += 1
        self.dead_letter_reasons[kind] += 1
        fields: dict[str, str | int | bytes] = {
            "reason": deadletters.reason_text(reason), "raw": raw[:RAW_LIMIT], "recv": recv_ns, "source": self.source}
        self._side.append((keys.DEAD_LETTER_STREAM, fields, self.dead_maxlen))

    def gap(self, symbol: str, start_ms: int, end_ms: int, reason: str, venue: str) -> None:
        """Queue a gap entry; it is written with the next flush and retried like ticks, never dropped."""
        fields: dict[str, str | int | bytes] = {
            "start_ms": start_ms, "end_ms": end_ms, "symbols": symbol, "reason": reason, "venue": venue}
        self._side.append((keys.GAPS_STREAM, fields, keys.GAPS_MAXLEN))

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._side)

    async def flush(self, give_up_after_s: float | None = None) -> None:
        """Write everything buffered; on a Redis error keep it and retry, so nothing is lost.

        Only at shutdown (`give_up_after_s`) does it stop retrying, and then it says how much it could not write.
        """
        async with self._lock:
            delay = 0.1
            deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
            while self._buffer or self._side:
                if deadline is not None and time.monotonic() > deadline:
                    log.error("Redis unreachable at shutdown: %d ticks and %d dead letters or gaps not written",
                              len(self._buffer), len(self._side))
                    return
                # Take the buffers before awaiting: ticks added meanwhile go to fresh lists, never dropped.
                batch, meta, side, marks = self._buffer, self._meta, self._side, self._marks
                self._buffer, self._meta, self._side, self._marks = [], [], [], {}
                try:
                    await self._send(batch, meta, side, marks)
                except (RedisError, OSError) as exc:
                    # keep what Redis did not confirm (a reply lost with the connection may still repeat one
                    # entry: the worker de-duplicates trades by id)
                    done = getattr(exc, "confirmed", 0)
                    self.published += done
                    self._buffer, self._meta = batch[done:] + self._buffer, meta[done:] + self._meta
                    if not getattr(exc, "side_done", False):
                        self._side = side + self._side
                    for symbol, ms in marks.items():
                        if ms > self._marks.get(symbol, 0):
                            self._marks[symbol] = ms
                    if self.redis_ok:
                        log.error("publish failed, holding %d entries and retrying: %s", len(batch) + len(side), exc)
                        self.redis_ok = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if not self.redis_ok:
                    log.info("publishing again")
                    self.redis_ok = True
                self.published += len(batch)

    async def _send(
        self, batch: list[bytes], meta: list[tuple[str, int] | None], side: list[Side], marks: dict[str, int],
    ) -> None:
        """One write of every packed XADD, then every reply: redis-py's pipeline costs ~25 µs a command in
        Python, this ~6 µs. An error reply or a broken connection drops the connection (its replies are out
        of step) and raises with `confirmed` set to the entries Redis acknowledged, so only the rest is retried.

        The write starts with `XINFO STREAM` (the stream as it was before this batch: we are its only writer)
        and ends with the newest trade time per symbol, so neither costs a round trip of its own."""
        if side:
            pipe = self.r.pipeline(transaction=False)
            for stream, fields, maxlen in side:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=False)  # type: ignore[arg-type]
            try:
                await pipe.execute()
            except BaseException as exc:
                exc.confirmed = 0  # type: ignore[attr-defined]
                raise
            self.depth_published += sum(1 for stream, _, _ in side if stream == self.depth_stream)
        if not batch:
            return
        tail: list[bytes] = []
        if marks and self.last_trade_key:
            marks_flat = [x for kv in marks.items() for x in kv]
            tail.append(hiredis.pack_command((b"HSET", self.last_trade_key, *marks_flat)))  # type: ignore[arg-type]
        payload = b"".join([self._info_cmd, *batch, *tail])
        conn = await self._connection()
        ids: list[bytes] = []  # filled as replies arrive: on an error, what Redis confirmed so far
        try:
            await conn.send_packed_command(payload, check_health=False)
            before = await self._read_state(conn)
            lost = self._check(before)
            await read_replies(conn, len(batch), ids)
            await read_replies(conn, len(tail), [])
        except BaseException as exc:
            confirmed = len(ids)
            await conn.disconnect()
            exc.confirmed = confirmed  # type: ignore[attr-defined]
            exc.side_done = True  # type: ignore[attr-defined]
            if confirmed:
                self.watch.confirmed(before, ids, meta)
            raise
        finally:
            await self._release(conn)
        self.watch.confirmed(before, ids, meta)
        if lost is not None:
            await self._rewound(lost)

    async def _connection(self) -> Any:
        """The connection a batch is written on (ingest/partitioned.py: the node of the stream in a Redis Cluster)."""
        return await self.r.connection_pool.get_connection()

    async def _release(self, conn: Any) -> None:
        await self.r.connection_pool.release(conn)

    async def _read_state(self, conn: Any) -> StreamState | None:
        try:
            reply = await conn.read_response()
        except ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            reply = None  # the stream is gone: nothing was ever added, as far as Redis knows
        try:
            return stream_state(reply)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:  # a reply we do not know: publish anyway
            log.warning("XINFO STREAM reply not understood, rewind check skipped: %r", exc)
            return None

    def _check(self, state: StreamState | None) -> Lost | None:
        if state is None:
            return None
        try:
            return self.watch.check(state)
        except Exception:  # the watch must never stop publishing
            log.exception("rewind check failed")
            return None

    async def check_rewind(self) -> None:
        """Between batches (housekeeping): has Redis gone back in time since our last confirmed write?"""
        async with self._lock:
            try:
                reply: Any = await self.r.execute_command("XINFO", "STREAM", self.stream, NEVER_DECODE=True)
            except ResponseError as exc:
                if "no such key" not in str(exc).lower():
                    raise
                reply = None
            lost = self._check(stream_state(reply))
            if lost is not None:
                await self._rewound(lost)

    async def _rewound(self, lost: Lost) -> None:
        log.error("REDIS WENT BACK IN TIME: %s", lost.describe())
        if self.on_rewind is not None:
            self.on_rewind(lost)
        # a Redis that lost everything lost the consumer groups too
        await self.setup()

    async def trim(self) -> None:
        """Trim the oldest entries beyond the bound that every group has acknowledged (ticks, then depth)."""
        backlog, over = await self._trim_stream(self.stream, self.maxlen)
        self._set_backlog(backlog, over)
        if self.depth_stream is not None:
            await self._trim_stream(self.depth_stream, self.depth_maxlen)

    async def _trim_stream(self, stream: str, maxlen: int) -> tuple[int, bool]:
        """(entries kept, whether unread entries alone exceed the bound)."""
        length = await self.r.xlen(stream)
        boundary = await safe_trim_boundary(self.r, stream) if length else None
        excess = length - maxlen
        if boundary is None or excess <= 0:
            return (0 if boundary is None else length), False
        older: Any = await self.r.xrange(stream, "-", "(" + format_id(*boundary), count=excess)
        if older:
            ms, seq = parse_id(older[-1][0])
            await self.r.xtrim(stream, minid=format_id(ms, seq + 1), approximate=False)
        return length - len(older), len(older) < excess

    def _set_backlog(self, backlog: int, over: bool) -> None:
        self.backlog = backlog
        if over and not self.backlog_over_bound:
            log.warning(
                "BACKLOG OVER BOUND: consumers have not acknowledged %d entries, more than STREAM_MAXLEN=%d; "
                "nothing unread is trimmed, Redis memory grows until they catch up", backlog, self.maxlen,
            )
        elif self.backlog_over_bound and not over:
            log.info("backlog back within the bound")
        self.backlog_over_bound = over
