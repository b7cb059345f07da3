"""The ingest loop: source -> parser -> publisher, with gap recording, status and clean shutdown.

No frame can stop it: whatever raises while one frame is handled dead-letters that frame. Intervals without
data become gaps in `stream:gaps`: a dropped connection, a restart of the live feed (after a crash or not:
the newest published trade per symbol is kept in Redis), and a Redis that lost acknowledged writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.parser import BAD_ROW, EXCEPTION, Control, EdgeRules, Rejected, Skipped, take_frame
from ingest.partitioned import publisher_for
from ingest.registry import SymbolFollower
from ingest.rewind import Lost
from ingest.sources.base import BatchSource, FeedEvent, FileRow, FrameSource, SourceItem, SymbolControl
from qs_common import keys
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.models import BookTicker, Trade
from qs_common.settings import Settings, Source
from qs_common.status import RateMeter, awrite_status, now_ms
from qs_common.venues.binance.config import Venue

log = logging.getLogger("ingest")

STATUS_PROCESS = keys.STATUS_INGEST
REASON_CRASH = "ingest restarted after crash"
REASON_RESTART = "ingest restarted"
REASON_REWIND = "redis lost acknowledged writes"
REPLAYING = ("replay", "ticks")  # sources that read files: their state is "replaying", not "connected"


class GapTracker:
    """Per symbol: the last trade time before a disconnect and the first one after it make a gap."""

    def __init__(self) -> None:
        self.last_trade_ms: dict[str, int] = {}
        self.open_gaps: dict[str, tuple[int, str]] = {}

    def disconnected(self, reason: str, symbols: frozenset[str] = frozenset()) -> None:
        """The connection of `symbols` (empty: every symbol) dropped."""
        for symbol, ts in self.last_trade_ms.items():
            if not symbols or symbol in symbols:
                self.open_gaps.setdefault(symbol, (ts, reason))

    def forget(self, symbol: str) -> None:
        """Unsubscribed on purpose: no gap until it trades again, and none spanning the time it was off."""
        self.last_trade_ms.pop(symbol, None)
        self.open_gaps.pop(symbol, None)

    def open(self, symbol: str, start_ms: int, reason: str) -> None:
        """A gap from `start_ms` that the symbol's next trade closes (the earlier start wins)."""
        held = self.open_gaps.get(symbol)
        if held is None or start_ms < held[0]:
            self.open_gaps[symbol] = (start_ms, reason)

    def trade(self, symbol: str, ts_ms: int) -> tuple[int, int, str] | None:
        self.last_trade_ms[symbol] = ts_ms
        gap = self.open_gaps.pop(symbol, None)
        if gap is None:
            return None
        start, reason = gap
        return start, ts_ms, reason


class Ingest:
    def __init__(self, settings: Settings, source: FrameSource, r: aioredis.Redis,
                 symbols: tuple[str, ...] | None = None) -> None:
        """`symbols`: the subscribed set at start (the live registry's for live and synthetic feeds), else
        SYMBOLS."""
        self.settings = settings
        self.symbols = tuple(settings.symbols if symbols is None else symbols)
        self.source = source
        self.r = r
        # Only the live feed loses trades while ingest is down; replays and the synthetic feed do not.
        self.live = settings.source is Source.BINANCE and source.name == "binance"
        venue = settings.venue.value
        # one tick stream, or one per symbol (TICK_PARTITIONING / REDIS_CLUSTER): ingest/partitioned.py
        self.pub = publisher_for(settings, r, source.name, keys.last_trade_key(venue) if self.live else None,
                                 keys.DEPTH_STREAM if settings.depth else None, self.symbols)
        self.pub.on_rewind = self._on_rewind
        self.rules = EdgeRules(frozenset(self.symbols), round(settings.tick_max_skew_s * 1000),
                               depth=settings.depth, usdm=settings.venue is Venue.BINANCE_USDM)
        self.gaps = GapTracker()
        self.follower = (SymbolFollower(settings.redis_url, source, self.rules, self.symbols, self.gaps.forget,
                                        settings.redis_cluster)
                         if isinstance(source, SymbolControl) else None)
        self.state = "starting"
        self.frames = 0
        self.skipped = 0
        self.controls = 0
        self.gap_count = 0
        self.connected_since_ms: int | None = None
        self.last_frame_ms: int | None = None
        self.last_recv_ns: int | None = None
        self._rate = RateMeter()
        self._exceptions_logged: set[str] = set()
        self._stopping = asyncio.Event()
        self._stop_requested = False

    def _set_state(self, state: str, why: str = "") -> None:
        if state != self.state:
            log.info("%s%s", state, f": {why}" if why else "")
            self.state = state

    async def _on_event(self, ev: FeedEvent) -> None:
        if ev.kind == "connected":
            self.connected_since_ms = now_ms()
            self._set_state("replaying" if self.source.name in REPLAYING else "connected", ev.reason)
        elif ev.kind == "disconnected":
            self.connected_since_ms = None
            self.gaps.disconnected(ev.reason, ev.symbols)
            self._set_state("reconnecting", ev.reason)
        elif ev.kind == "finished":
            self._set_state("done", ev.reason)

    def _on_rewind(self, lost: Lost) -> None:
        reason = REASON_REWIND + (" (possibly earlier too)" if lost.beyond_memory else "")
        for symbol, start_ms in lost.first_trade_ms.items():
            self.gaps.open(symbol, start_ms, reason)

    async def _open_restart_gaps(self) -> None:
        """Live feed: every symbol's first trade closes a gap from the newest trade the last run published."""
        venue = self.settings.venue.value
        last: dict[bytes, bytes] = await self.r.hgetall(keys.last_trade_key(venue))  # type: ignore[misc,assignment]
        clean = await self.r.get(keys.clean_stop_key(venue))
        reason = REASON_RESTART if clean else REASON_CRASH
        for symbol in self.symbols:
            ms = last.get(symbol.encode())
            if ms is not None:
                self.gaps.open(symbol, int(ms), reason)
        if last:
            log.info("%s: gaps open from the last published trades (%s)", reason,
                     ", ".join(f"{k.decode()} {v.decode()} ms" for k, v in sorted(last.items())))
        await self.r.delete(keys.clean_stop_key(venue))

    async def _handle(self, recv_ns: int, raw: bytes, origin: str = "") -> None:
        self._take(recv_ns, raw, origin)
        if self.pub.buffered >= self.settings.publish_batch:
            await self.pub.flush()

    def _take(self, recv_ns: int, raw: bytes, origin: str = "") -> None:
        self.frames += 1
        self.last_recv_ns = recv_ns
        try:
            # a book ticker goes straight to the publisher's buffer (None back); anything else is routed
            result = take_frame(recv_ns, raw, self.rules, self.pub.add_book)
            if result is not None:
                self._route(recv_ns, raw, result, origin)
        except Exception as exc:  # one frame must never stop the feed: it is kept, with what went wrong
            self._failed(recv_ns, raw, exc)

    def _failed(self, recv_ns: int, raw: bytes, exc: Exception) -> None:
        name = type(exc).__name__
        if name not in self._exceptions_logged:  # a traceback per kind of failure, not per frame
            self._exceptions_logged.add(name)
            log.exception("frame not handled, dead-lettered (further %s are only counted)", name, exc_info=exc)
        data = raw if isinstance(raw, bytes) else str(raw).encode(errors="replace")
        self.pub.dead_letter(f"ingest error: {name}: {exc}", data, recv_ns, EXCEPTION)

    async def _handle_row(self, row: FileRow) -> None:
        if not row.problem:
            await self._handle(row.recv_ns, row.raw, row.origin)
            return
        self.frames += 1
        self.pub.dead_letter(f"{row.origin}: {row.problem}", row.raw, row.recv_ns, BAD_ROW)
        if self.pub.buffered >= self.settings.publish_batch:
            await self.pub.flush()

    def _route(self, recv_ns: int, raw: bytes, result: object, origin: str = "") -> None:
        if type(result) is BookTicker:  # three frames in four: one test, not the whole chain below
            self.pub.add(result)
        elif isinstance(result, Trade):
            self.pub.add(result)
            self.last_frame_ms = result.ts_trade_ms
            gap = self.gaps.trade(result.symbol, result.ts_trade_ms)
            if gap is not None:
                start, end, reason = gap
                self.gap_count += 1
                log.warning("gap recorded for %s: %d..%d ms (%s)", result.symbol, start, end, reason)
                self.pub.gap(result.symbol, start, end, reason, self.settings.venue.value)
        elif isinstance(result, (DepthDiff, DepthSnapshot)):
            self.pub.add_depth(result, recv_ns)
        elif isinstance(result, Rejected):
            self.pub.dead_letter(f"{origin}: {result.reason}" if origin else result.reason, raw, recv_ns, result.kind)
        elif isinstance(result, Skipped):
            self.skipped += 1
        elif isinstance(result, Control):
            self.controls += 1
            log.info("venue control event: %s", result.event)
        else:
            self.pub.add(result)  # type: ignore[arg-type]

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state, "source": self.source.name, "venue": self.settings.venue.value,
            "connected_since_ms": self.connected_since_ms, "frames": self.frames,
            "frames_per_s": self._rate.rate(self.frames), "published": self.pub.published,
            "dead_letters": self.pub.dead_letters, "dead_letter_reasons": dict(self.pub.dead_letter_reasons),
            "skipped": self.skipped, "depth": self.settings.depth, "depth_published": self.pub.depth_published,
            "gaps": self.gap_count, "redis_rewinds": self.pub.watch.rewinds,
            "last_frame_ms": self.last_frame_ms, "last_recv_ns": self.last_recv_ns,
            "backlog": self.pub.backlog, "backlog_over_bound": self.pub.backlog_over_bound,
            "redis_ok": self.pub.redis_ok,
            **self._subscription_status(),
        }

    def _subscription_status(self) -> dict[str, Any]:
        if self.follower is None or not isinstance(self.source, SymbolControl):
            return {}
        return {"symbols_active": len(self.follower.symbols), "symbol_changes": self.follower.changes,
                **self.source.subscription_status()}

    async def _housekeeping(self) -> None:
        """Every flush interval: flush; every second: trim and write the status record."""
        last_status = 0.0
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.publish_flush_ms / 1000)
                return
            except TimeoutError:
                pass
            try:
                await self.pub.flush()
                if time.monotonic() - last_status >= 1.0:
                    last_status = time.monotonic()
                    await self.pub.check_rewind()
                    await self.pub.trim()
                    await awrite_status(self.r, STATUS_PROCESS, self.status())
            except Exception as exc:  # housekeeping must outlive a Redis hiccup
                log.error("housekeeping failed: %s", exc)

    async def _handle_batch(self, batch: list[SourceItem]) -> bool:
        """Handle the items of one read; True: stop (the source finished, or a signal asked)."""
        rules, add_book, route = self.rules, self.pub.add_book, self._route
        for item in batch:
            if type(item) is tuple:  # a frame: the common case, handled without an await (`_take`, inline)
                recv_ns, raw = item
                self.frames += 1
                self.last_recv_ns = recv_ns
                try:
                    result = take_frame(recv_ns, raw, rules, add_book)
                    if result is not None:
                        route(recv_ns, raw, result)
                except Exception as exc:  # one frame must never stop the feed
                    self._failed(recv_ns, raw, exc)
            elif isinstance(item, FeedEvent):
                await self._on_event(item)
                if item.kind == "finished":
                    return True
            elif isinstance(item, FileRow):
                await self._handle_row(item)
            if self._stop_requested:
                self._set_state("stopping", "signal")
                return True
        # once per socket read, not per frame: the buffer may pass PUBLISH_BATCH by one read's frames
        if self.pub.buffered >= self.settings.publish_batch:
            await self.pub.flush()
        return False

    def request_stop(self) -> None:
        """Stop after the frame in hand; what was read is flushed before exit."""
        self._stop_requested = True

    async def run(self) -> None:
        await self.pub.setup()
        if self.live:
            await self._open_restart_gaps()
        keeper = asyncio.create_task(self._housekeeping())
        follower = asyncio.create_task(self.follower.run(self._stopping)) if self.follower else None
        try:
            async for batch in _batches(self.source):
                if await self._handle_batch(batch):
                    break
        finally:
            # Let housekeeping finish what it is doing: cancelling a Redis call midway can hang redis-py.
            self._stopping.set()
            if follower is not None:
                # it may wait for a venue reply that will not come once frames stop flowing
                await asyncio.wait({follower}, timeout=2)
                follower.cancel()
            await asyncio.gather(keeper, *([follower] if follower else []), return_exceptions=True)
            await self.pub.flush(give_up_after_s=10)
            if self.state != "done":
                self._set_state("stopped")
            try:
                if self.live and not self.pub.buffered:
                    # everything read was written: the next start's gaps are downtime, not a crash
                    await self.r.set(keys.clean_stop_key(self.settings.venue.value), now_ms())
                await self.pub.trim()
                await awrite_status(self.r, STATUS_PROCESS, self.status())
            except (RedisError, OSError) as exc:
                log.error("final status not written: %s", exc)
            log.info("published %d ticks, %d dead letters, %d skipped", self.pub.published,
                     self.pub.dead_letters, self.skipped)


async def _batches(source: FrameSource) -> AsyncIterator[list[SourceItem]]:
    """The source's items a read at a time where it can, else one by one."""
    if isinstance(source, BatchSource):
        async for batch in source.batches():
            yield batch
        return
    async for item in source.items():
        yield [item]
