"""Binance combined-stream client: every symbol x {@trade, @bookTicker} (and @depth@100ms with DEPTH), live.

Transport only (URLs, stream names, limits and the backoff rule are `qs_common.venues.binance.config`'s; the
frames are parsed by `ingest.parser`). It owns the connections and their subscriptions:
- symbols are added and removed on the open connection with `SUBSCRIBE` / `UNSUBSCRIBE` (`set_symbols`), so
  the streams already running never stop; requests are paced by a token bucket under Binance's 5 messages per
  second, batched (many streams in one request), and their replies matched by id (errors logged and counted);
- a connection carries at most 1,024 streams: past that a second one opens (and so on); a symbol's streams
  always share one connection;
- every connection reconnects with exponential backoff and full jitter after a failure, on its own before
  Binance's 24 h cut, when no frame arrived for `stale_s` seconds, and on `serverShutdown`; it comes back with
  the current set (the first streams in the URL, the rest by SUBSCRIBE).
Each disconnect is reported as a `FeedEvent` naming the connection's symbols, so ingest records their interval
without data. Replies to our requests are consumed here: they are not frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

from ingest.sources.base import SourceItem
from ingest.sources.binance_link import Link, Request
from ingest.sources.binance_socket import Inbox, Reply
from qs_common.venues.binance.config import (
    LIST_SUBSCRIPTIONS,
    WS_MAX_STREAMS,
    WS_REPLY_TIMEOUT_S,
    combined_stream_url,
    symbol_streams,
)
from qs_common.venues.binance.wire import MethodReply

log = logging.getLogger(__name__)

OUT_QUEUE = 4096  # frames between the connections and the ingest loop (past it the sockets are held back)


class BinanceSource:
    name = "binance"

    def __init__(
        self,
        base_url: str,
        symbols: tuple[str, ...],
        stale_s: float = 10.0,
        reconnect_after_s: float = 23.5 * 3600,
        backoff_max_s: float = 60.0,
        depth: bool = False,
    ) -> None:
        self.base_url = base_url
        self.url = combined_stream_url(base_url, symbols, depth)  # the first connection's URL at start
        self.depth = depth
        self.stale_s = stale_s
        self.reconnect_after_s = reconnect_after_s
        self.backoff_max_s = backoff_max_s
        self.connections = 0  # connections opened so far
        self.requests_sent = 0
        self.request_errors = 0  # refused by the venue or unanswered
        self.links: list[Link] = []
        self._link_ids = itertools.count()
        self._request_ids = itertools.count(1)
        self._pending: dict[int, tuple[Link, list[Request]]] = {}
        self._out: Inbox | None = None
        self._assign(symbols)

    # ------------------------------------------------------------------ which symbol rides on which connection

    def _assign(self, symbols: tuple[str, ...]) -> None:
        want = {s.upper() for s in symbols}
        for link in self.links:
            link.symbols &= want
        have = set().union(*(link.symbols for link in self.links))
        per_symbol = len(symbol_streams("X", self.depth))
        for sym in sorted(want - have):
            room = next((k for k in self.links if (len(k.symbols) + 1) * per_symbol <= WS_MAX_STREAMS), None)
            if room is None:
                room = Link(self, next(self._link_ids))
                self.links.append(room)
            room.symbols.add(sym)
        if not self.links:
            self.links.append(Link(self, next(self._link_ids)))

    def streams_of(self, symbols: set[str]) -> set[str]:
        return set(self.ordered_streams(symbols))

    def ordered_streams(self, symbols: set[str]) -> list[str]:
        """Symbol by symbol (sorted), each symbol's kinds in Binance's usual order."""
        return [st for s in sorted(symbols) for st in symbol_streams(s, self.depth)]

    async def set_symbols(self, symbols: tuple[str, ...]) -> None:
        """Subscribe what is new and unsubscribe what went, on the open connections; return once the venue
        answered (or WS_REPLY_TIMEOUT_S passed)."""
        self._assign(symbols)
        waits: list[asyncio.Future[Any]] = []
        for link in list(self.links):
            if not link.symbols and link is not self.links[0]:
                self.links.remove(link)  # closing the connection drops its streams: nothing to unsubscribe
                await link.stop()
                continue
            waits += link.sync()
            if self._out is not None:
                link.start(self._out)
        if waits:
            await asyncio.wait(waits, timeout=2 * WS_REPLY_TIMEOUT_S)

    async def list_subscriptions(self) -> list[str] | None:
        """The streams the venue says it sends (all connections), or None if one did not answer."""
        out: list[str] = []
        for link in self.links:
            fut = link.request(LIST_SUBSCRIPTIONS, None)
            if fut is None:
                return None
            reply = await asyncio.wait_for(fut, 2 * WS_REPLY_TIMEOUT_S)
            if not isinstance(reply, MethodReply) or reply.result is None:
                return None
            out += reply.result
        return sorted(out)

    # ------------------------------------------------------------------ requests and their replies

    def next_request_id(self, link: Link, batch: list[Request]) -> int:
        rid = next(self._request_ids)
        self._pending[rid] = (link, batch)
        self.requests_sent += 1
        asyncio.get_running_loop().call_later(WS_REPLY_TIMEOUT_S, self._expire, rid)
        return rid

    def _expire(self, rid: int) -> None:
        held = self._pending.pop(rid, None)
        if held is not None:
            self.request_errors += 1
            log.warning("connection %d: no reply to request %d within %g s", held[0].id, rid, WS_REPLY_TIMEOUT_S)
            _settle(held[1], None)

    def _on_reply(self, item: Reply) -> None:
        reply = item.reply
        held = self._pending.pop(reply.id, None) if reply.id is not None else None
        if reply.error is not None:
            self.request_errors += 1
            what = " ".join(f"{r.method} {','.join(r.params or [])[:200]}" for r in held[1]) if held else "?"
            log.warning("connection %d: request %s refused by the venue (%s): %s", item.link.id, reply.id,
                        reply.error_text, what)
        elif held is None:
            log.info("connection %d: reply to unknown request id %s", item.link.id, reply.id)
        if held is not None:
            _settle(held[1], reply)

    def drop_pending(self, link: Link) -> None:
        """The connection closed: its open requests will get no reply (the next connect subscribes the set)."""
        for rid, (owner, batch) in list(self._pending.items()):
            if owner is link:
                del self._pending[rid]
                _settle(batch, None)

    # ------------------------------------------------------------------ the frames

    def subscription_status(self) -> dict[str, Any]:
        return {
            "connections_open": sum(1 for k in self.links if k.sent is not None),
            "streams": sum(len(self.streams_of(k.symbols)) for k in self.links),
            "subscribe_requests": self.requests_sent, "subscribe_errors": self.request_errors,
        }

    async def items(self) -> AsyncIterator[SourceItem]:
        async for batch in self.batches():
            for item in batch:
                yield item

    async def batches(self) -> AsyncIterator[list[SourceItem]]:
        """Items a socket read at a time: the frames of one read (or one event) per list."""
        inbox = Inbox(OUT_QUEUE)
        self._out = inbox
        for link in self.links:
            link.start(inbox)
        try:
            while True:
                item = inbox.take()  # without awaiting while items wait: one await per burst, not per read
                if item is None:
                    item = await inbox.get()
                if isinstance(item, list):
                    yield item  # type: ignore[misc]
                elif isinstance(item, Reply):
                    self._on_reply(item)
                else:
                    yield [item]
        finally:
            self._out = None
            for link in self.links:
                with contextlib.suppress(Exception):
                    await link.stop()


def _settle(batch: list[Request], result: MethodReply | None) -> None:
    for req in batch:
        if not req.done.done():
            req.done.set_result(result)

