"""One Binance stream connection of `BinanceSource`: its symbols, its reconnect loop and its paced requests.

A link knows which symbols it should carry (`symbols`) and, while connected, which streams it has asked the
venue for (`sent`); `sync()` turns the difference into UNSUBSCRIBE and SUBSCRIBE requests. Requests wait in an
outbox and leave through one token bucket per connection; consecutive requests of one method are merged into one
message (up to WS_PARAMS_PER_MESSAGE streams), so a burst of changes costs few messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ingest.sources.base import FeedEvent, SourceItem
from ingest.sources.pacing import TokenBucket
from qs_common.venues.binance.config import (
    DEPTH_STREAM,
    STREAM_KINDS,
    SUBSCRIBE,
    UNSUBSCRIBE,
    WS_PARAMS_PER_MESSAGE,
    WS_SEND_BURST,
    WS_SEND_RATE_PER_S,
    WS_URL_MAX_STREAMS,
    backoff_delay,
    streams_url,
)
from qs_common.venues.binance.wire import MethodReply, method_reply, method_request

if TYPE_CHECKING:
    from ingest.sources.binance import BinanceSource

log = logging.getLogger("ingest.sources.binance")

RECONNECT_BASE_S = 0.5  # the first reconnect after a failure waits up to 1 s, doubling per failure
_STREAM_FRAME = b'{"stream":'
_KIND_ORDER = {kind: i for i, kind in enumerate((*STREAM_KINDS, DEPTH_STREAM))}


@dataclass
class Request:
    method: str
    params: list[str] | None
    done: asyncio.Future[MethodReply | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(frozen=True, slots=True)
class Reply:
    """A venue reply read on `link`, queued behind the frames read before it: when the source handles it, every
    earlier frame of that connection has been handed to ingest."""

    link: Link
    reply: MethodReply


class Link:
    def __init__(self, source: BinanceSource, link_id: int) -> None:
        self.source = source
        self.id = link_id
        self.symbols: set[str] = set()
        self.sent: set[str] | None = None  # streams asked for on the open connection; None while not connected
        self.outbox: deque[Request] = deque()
        self.wake = asyncio.Event()  # outbox or symbols changed
        self.bucket = TokenBucket(WS_SEND_RATE_PER_S, WS_SEND_BURST)
        self.task: asyncio.Task[None] | None = None
        self.attempt = 0

    # ------------------------------------------------------------------ subscriptions

    def sync(self) -> list[asyncio.Future[Any]]:
        """Queue the requests that bring the open connection to `symbols`; their futures. Not connected: nothing,
        the next connect subscribes the current set."""
        self.wake.set()
        if self.sent is None:
            return []
        want = self.source.streams_of(self.symbols)
        removes, adds = _in_order(self.sent - want), _in_order(want - self.sent)
        self.sent = want
        reqs = [Request(method, chunk) for method, streams in ((UNSUBSCRIBE, removes), (SUBSCRIBE, adds))
                for chunk in _chunks(streams, WS_PARAMS_PER_MESSAGE)]
        self.outbox.extend(reqs)
        return [r.done for r in reqs]

    def request(self, method: str, params: list[str] | None) -> asyncio.Future[Any] | None:
        if self.sent is None:
            return None
        req = Request(method, params)
        self.outbox.append(req)
        self.wake.set()
        return req.done

    def _next_message(self) -> tuple[str, list[str] | None, list[Request]]:
        """Pop the first request and the following ones of the same method that fit one message."""
        first = self.outbox.popleft()
        batch, params = [first], list(first.params) if first.params is not None else None
        while params is not None and self.outbox and self.outbox[0].method == first.method:
            nxt = self.outbox[0].params or []
            if len(params) + len(nxt) > WS_PARAMS_PER_MESSAGE:
                break
            batch.append(self.outbox.popleft())
            params += nxt
        return first.method, params, batch

    async def _send_loop(self, ws: websockets.ClientConnection) -> None:
        while True:
            while not self.outbox:
                self.wake.clear()
                await self.wake.wait()
            await self.bucket.take()
            if not self.outbox:
                continue
            method, params, batch = self._next_message()
            rid = self.source.next_request_id(self, batch)
            log.info("connection %d: %s %d streams (request %d)", self.id, method, len(params or []), rid)
            await ws.send(method_request(method, rid, params))

    # ------------------------------------------------------------------ the connection

    def start(self, out: asyncio.Queue[SourceItem | Reply]) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(out), name=f"binance-link-{self.id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self, out: asyncio.Queue[SourceItem | Reply]) -> None:
        src = self.source
        while True:
            while not self.symbols:  # an emptied first connection waits for symbols
                self.wake.clear()
                await self.wake.wait()
            in_url = src.ordered_streams(self.symbols)[:WS_URL_MAX_STREAMS]
            url = streams_url(src.base_url, in_url)
            reason = await self._session(url, set(in_url), out)
            await out.put(FeedEvent("disconnected", f"{reason} (connection {self.id})", frozenset(self.symbols)))
            delay = backoff_delay(self.attempt, RECONNECT_BASE_S, src.backoff_max_s) if self.attempt else 0.0
            self.attempt += 1
            if delay:
                await asyncio.sleep(delay)

    async def _session(self, url: str, in_url: set[str], out: asyncio.Queue[SourceItem | Reply]) -> str:
        try:
            async with websockets.connect(
                url, open_timeout=10, close_timeout=2, max_size=2**22, compression=None,
                ping_interval=20, ping_timeout=20, max_queue=4096,
            ) as ws:
                self.source.connections += 1
                self.sent, self.outbox = in_url, deque()
                self.sync()  # the streams past the URL's, and what changed while connecting
                await out.put(FeedEvent("connected", f"connection {self.id}: {len(self.symbols)} symbols",
                                        frozenset(self.symbols)))
                sender = asyncio.create_task(self._send_loop(ws))
                try:
                    return await self._read(ws, out)
                finally:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
                    self.sent = None
                    self.source.drop_pending(self)
        except ConnectionClosed as exc:
            return f"connection closed: {exc}"
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            return f"connect failed: {exc!r}"

    async def _read(self, ws: websockets.ClientConnection, out: asyncio.Queue[SourceItem | Reply]) -> str:
        src = self.source
        opened = time.monotonic()
        loop = asyncio.get_running_loop()
        # One timeout context for the connection, re-armed per frame: `wait_for` per frame makes a task per frame
        # and cut the receive rate 3x. Disarmed while the frame waits for room in the queue, so a slow ingest loop
        # is never mistaken for a stale feed.
        try:
            async with asyncio.timeout(None) as watchdog:
                while True:
                    if time.monotonic() - opened > src.reconnect_after_s:
                        return "scheduled reconnect before the 24 h cut"
                    watchdog.reschedule(loop.time() + src.stale_s)
                    raw = await ws.recv(decode=False)
                    watchdog.reschedule(None)
                    self.attempt = 0
                    item: SourceItem | Reply = (time.time_ns(), raw)
                    if not raw.startswith(_STREAM_FRAME) and (reply := method_reply(raw)) is not None:
                        item = Reply(self, reply)
                    if out.full():
                        await out.put(item)
                    else:
                        out.put_nowait(item)
                    if b"serverShutdown" in raw:
                        return "venue announced serverShutdown"
        except TimeoutError:
            return f"stale feed: no frame for {src.stale_s:g} s"


def _in_order(streams: set[str]) -> list[str]:
    """Symbol by symbol, each symbol's kinds in the order Binance's docs list them (trade, bookTicker, depth)."""
    return sorted(streams, key=lambda st: (st.partition("@")[0], _KIND_ORDER.get(st.partition("@")[2], 9)))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
