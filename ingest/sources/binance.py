"""Binance combined-stream client: one connection for all symbols x {@trade, @bookTicker}.

Transport only (URLs, stream names and the backoff rule are `qs_common.venues.binance.config`'s; the frames are
parsed by `ingest.parser`). It owns only the connection: subscribe by URL, pass raw frame bytes on, and reconnect
- with exponential backoff and full jitter after a failure,
- on its own before Binance's 24 h cut (`reconnect_after_h`),
- when no frame arrived for `stale_s` seconds (stale-feed watchdog),
- when the venue announces a `serverShutdown`.
Each disconnect is reported as a `FeedEvent`, so ingest records the interval without data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ingest.sources.base import FeedEvent, SourceItem
from qs_common.venues.binance.config import backoff_delay, combined_stream_url

log = logging.getLogger(__name__)

RECONNECT_BASE_S = 0.5  # the first reconnect after a failure waits up to 1 s, doubling per failure


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
        self.url = combined_stream_url(base_url, symbols, depth)
        self.stale_s = stale_s
        self.reconnect_after_s = reconnect_after_s
        self.backoff_max_s = backoff_max_s
        self.connections = 0

    async def items(self) -> AsyncIterator[SourceItem]:
        attempt = 0
        while True:
            reason = ""
            try:
                async with websockets.connect(
                    self.url, open_timeout=10, close_timeout=2, max_size=2**22, compression=None,
                    ping_interval=20, ping_timeout=20, max_queue=4096,
                ) as ws:
                    self.connections += 1
                    opened = time.monotonic()
                    yield FeedEvent("connected", self.url)
                    got_frame = False
                    loop = asyncio.get_running_loop()
                    # One timeout context for the connection, re-armed per frame: `wait_for` per frame makes a
                    # task per frame and cut the receive rate 3x. Disarmed while the caller holds the frame, so
                    # a slow Redis write is never mistaken for a stale feed.
                    try:
                        async with asyncio.timeout(None) as watchdog:
                            while True:
                                if time.monotonic() - opened > self.reconnect_after_s:
                                    reason = "scheduled reconnect before the 24 h cut"
                                    break
                                watchdog.reschedule(loop.time() + self.stale_s)
                                raw = await ws.recv(decode=False)
                                watchdog.reschedule(None)
                                if not got_frame:
                                    got_frame, attempt = True, 0
                                yield time.time_ns(), raw
                                if b"serverShutdown" in raw:
                                    reason = "venue announced serverShutdown"
                                    break
                    except TimeoutError:
                        reason = f"stale feed: no frame for {self.stale_s:g} s"
            except ConnectionClosed as exc:
                reason = f"connection closed: {exc}"
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                reason = f"connect failed: {exc!r}"
            yield FeedEvent("disconnected", reason)
            delay = backoff_delay(attempt, RECONNECT_BASE_S, self.backoff_max_s) if attempt else 0.0
            attempt += 1
            if delay:
                await asyncio.sleep(delay)
