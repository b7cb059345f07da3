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
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from picows import WSError, WSInvalidURL, WSMsgType, ws_connect

from ingest.sources.base import FeedEvent
from ingest.sources.binance_socket import MAX_MESSAGE, Connection, Inbox
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
from qs_common.venues.binance.wire import MethodReply, method_request

if TYPE_CHECKING:
    from ingest.sources.binance import BinanceSource

log = logging.getLogger("ingest.sources.binance")

RECONNECT_BASE_S = 0.5  # the first reconnect after a failure waits up to 1 s, doubling per failure
OPEN_TIMEOUT_S = 10.0  # TCP connect + WebSocket handshake
CLOSE_TIMEOUT_S = 2.0  # at shutdown: how long the close may take before the socket is dropped
PING_IDLE_S = 20.0  # ping a server that sent nothing for this long; no pong within as long again: reconnect
_KIND_ORDER = {kind: i for i, kind in enumerate((*STREAM_KINDS, DEPTH_STREAM))}


@dataclass
class Request:
    method: str
    params: list[str] | None
    done: asyncio.Future[MethodReply | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


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

    async def _send_loop(self, conn: Connection) -> None:
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
            if conn.transport is not None:
                conn.transport.send(WSMsgType.TEXT, method_request(method, rid, params).encode())

    # ------------------------------------------------------------------ the connection

    def start(self, inbox: Inbox) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(inbox), name=f"binance-link-{self.id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self, inbox: Inbox) -> None:
        src = self.source
        while True:
            while not self.symbols:  # an emptied first connection waits for symbols
                self.wake.clear()
                await self.wake.wait()
            in_url = src.ordered_streams(self.symbols)[:WS_URL_MAX_STREAMS]
            url = streams_url(src.base_url, in_url)
            reason = await self._session(url, set(in_url), inbox)
            inbox.put(FeedEvent("disconnected", f"{reason} (connection {self.id})", frozenset(self.symbols)))
            delay = backoff_delay(self.attempt, RECONNECT_BASE_S, src.backoff_max_s) if self.attempt else 0.0
            self.attempt += 1
            if delay:
                await asyncio.sleep(delay)

    def opened(self, inbox: Inbox, in_url: set[str]) -> None:
        """The handshake is done (called by the connection before it hands on its first frame)."""
        self.source.connections += 1
        self.sent, self.outbox = in_url, deque()
        self.sync()  # the streams past the URL's, and what changed while connecting
        inbox.put(FeedEvent("connected", f"connection {self.id}: {len(self.symbols)} symbols",
                            frozenset(self.symbols)))

    async def _session(self, url: str, in_url: set[str], inbox: Inbox) -> str:
        src = self.source
        made: list[Connection] = []

        def connection() -> Connection:
            made.append(Connection(self, inbox, src.stale_s, src.reconnect_after_s, in_url))
            return made[-1]

        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                _, conn = await ws_connect(
                    connection, url,
                    websocket_handshake_timeout=OPEN_TIMEOUT_S, max_frame_size=MAX_MESSAGE, enable_auto_pong=True,
                    enable_auto_ping=True, auto_ping_idle_timeout=PING_IDLE_S, auto_ping_reply_timeout=PING_IDLE_S,
                    logger_name="binance", max_redirects=0,
                )
        except BaseException as exc:
            for half_open in made:  # a timeout or a stop can strike after the handshake, before ws_connect returned
                half_open.close("connect failed")
            if self.sent is not None:
                self.sent = None
                src.drop_pending(self)
            if isinstance(exc, (OSError, WSError, WSInvalidURL, TimeoutError)):
                return f"connect failed: {exc!r}"
            raise
        assert isinstance(conn, Connection)
        sender = asyncio.create_task(self._send_loop(conn))
        try:
            return await asyncio.shield(conn.closed)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self.sent = None
            src.drop_pending(self)
            conn.close("stopped")  # nothing when it already closed; at shutdown: a close frame, then the socket
            if conn.transport is not None:
                with contextlib.suppress(Exception):  # whatever the socket says now, it is gone
                    await asyncio.wait_for(conn.transport.wait_disconnected(), CLOSE_TIMEOUT_S)


def _in_order(streams: set[str]) -> list[str]:
    """Symbol by symbol, each symbol's kinds in the order Binance's docs list them (trade, bookTicker, depth)."""
    return sorted(streams, key=lambda st: (st.partition("@")[0], _KIND_ORDER.get(st.partition("@")[2], 9)))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
