"""The ingest loop: source -> parser -> publisher, with gap recording, status and clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.parser import Control, Rejected, Skipped, parse_frame
from ingest.publisher import Publisher
from ingest.sources.base import FeedEvent, FrameSource
from qs_common.models import Trade
from qs_common.settings import Settings
from qs_common.status import RateMeter, awrite_status, now_ms

log = logging.getLogger("ingest")

STATUS_PROCESS = "ingest"


class GapTracker:
    """Per symbol: the last trade time before a disconnect and the first one after it make a gap."""

    def __init__(self) -> None:
        self.last_trade_ms: dict[str, int] = {}
        self.open_gaps: dict[str, tuple[int, str]] = {}

    def disconnected(self, reason: str) -> None:
        for symbol, ts in self.last_trade_ms.items():
            self.open_gaps.setdefault(symbol, (ts, reason))

    def trade(self, symbol: str, ts_ms: int) -> tuple[int, int, str] | None:
        self.last_trade_ms[symbol] = ts_ms
        gap = self.open_gaps.pop(symbol, None)
        if gap is None:
            return None
        start, reason = gap
        return start, ts_ms, reason


class Ingest:
    def __init__(self, settings: Settings, source: FrameSource, r: aioredis.Redis) -> None:
        self.settings = settings
        self.source = source
        self.r = r
        self.pub = Publisher(r, settings.ticks_stream, settings.stream_maxlen, source.name)
        self.gaps = GapTracker()
        self.state = "starting"
        self.frames = 0
        self.skipped = 0
        self.controls = 0
        self.gap_count = 0
        self.connected_since_ms: int | None = None
        self.last_frame_ms: int | None = None
        self.last_recv_ns: int | None = None
        self._rate = RateMeter()
        self._stopping = asyncio.Event()
        self._stop_requested = False

    def _set_state(self, state: str, why: str = "") -> None:
        if state != self.state:
            log.info("%s%s", state, f": {why}" if why else "")
            self.state = state

    async def _on_event(self, ev: FeedEvent) -> None:
        if ev.kind == "connected":
            self.connected_since_ms = now_ms()
            self._set_state("replaying" if self.source.name == "replay" else "connected", ev.reason)
        elif ev.kind == "disconnected":
            self.connected_since_ms = None
            self.gaps.disconnected(ev.reason)
            self._set_state("reconnecting", ev.reason)
        elif ev.kind == "finished":
            self._set_state("done", ev.reason)

    async def _handle(self, recv_ns: int, raw: bytes) -> None:
        self.frames += 1
        self.last_recv_ns = recv_ns
        result = parse_frame(recv_ns, raw)
        if isinstance(result, Trade):
            self.pub.add(result)
            self.last_frame_ms = result.ts_trade_ms
            gap = self.gaps.trade(result.symbol, result.ts_trade_ms)
            if gap is not None:
                start, end, reason = gap
                self.gap_count += 1
                log.warning("gap recorded for %s: %d..%d ms (%s)", result.symbol, start, end, reason)
                await self.pub.record_gap(result.symbol, start, end, reason, self.settings.venue.value)
        elif isinstance(result, Rejected):
            self.pub.dead_letter(result.reason, raw, recv_ns)
        elif isinstance(result, Skipped):
            self.skipped += 1
        elif isinstance(result, Control):
            self.controls += 1
            log.info("venue control event: %s", result.event)
        else:
            self.pub.add(result)
        if self.pub.buffered >= self.settings.publish_batch:
            await self.pub.flush()

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state, "source": self.source.name, "venue": self.settings.venue.value,
            "connected_since_ms": self.connected_since_ms, "frames": self.frames,
            "frames_per_s": self._rate.rate(self.frames), "published": self.pub.published,
            "dead_letters": self.pub.dead_letters, "skipped": self.skipped, "gaps": self.gap_count,
            "last_frame_ms": self.last_frame_ms, "last_recv_ns": self.last_recv_ns,
            "backlog": self.pub.backlog, "backlog_over_bound": self.pub.backlog_over_bound,
            "redis_ok": self.pub.redis_ok,
        }

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
                    await self.pub.trim()
                    await awrite_status(self.r, STATUS_PROCESS, self.status())
            except Exception as exc:  # housekeeping must outlive a Redis hiccup
                log.error("housekeeping failed: %s", exc)

    def request_stop(self) -> None:
        """Stop after the frame in hand; what was read is flushed before exit."""
        self._stop_requested = True

    async def run(self) -> None:
        await self.pub.setup()
        keeper = asyncio.create_task(self._housekeeping())
        try:
            async for item in self.source.items():
                if isinstance(item, FeedEvent):
                    await self._on_event(item)
                    if item.kind == "finished":
                        break
                else:
                    await self._handle(item[0], item[1])
                if self._stop_requested:
                    self._set_state("stopping", "signal")
                    break
        finally:
            # Let housekeeping finish what it is doing: cancelling a Redis call midway can hang redis-py.
            self._stopping.set()
            await asyncio.gather(keeper, return_exceptions=True)
            await self.pub.flush(give_up_after_s=10)
            if self.state != "done":
                self._set_state("stopped")
            try:
                await self.pub.trim()
                await awrite_status(self.r, STATUS_PROCESS, self.status())
            except (RedisError, OSError) as exc:
                log.error("final status not written: %s", exc)
            log.info("published %d ticks, %d dead letters, %d skipped", self.pub.published,
                     self.pub.dead_letters, self.skipped)
