"""A local WebSocket server that speaks Binance's combined-stream protocol and plays recorded frames.

`/stream?streams=btcusdt@trade/ethusdt@bookTicker/...` gets, in receive order, the recorded frames of exactly
those streams, as the text Binance sent. Scenarios for failure tests: close the connection after a number of
frames and skip (withhold) some frames before the next connection resumes; send `serverShutdown`; go silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port
from tests.recordings import frames

# The recordings are from 2024-08-08 and the live source stamps frames with today's clock: ingest against this
# server needs a receive-time window that reaches back to them (ten years at most, TICK_MAX_SKEW_S's bound).
RECORDED_SKEW_ENV = {"TICK_MAX_SKEW_S": str(3_650 * 86_400)}


@dataclass
class Script:
    """What the server does, connection by connection."""

    drop_after: list[int] = field(default_factory=list)  # per connection: close after this many frames
    withhold: int = 0  # frames skipped after the first drop (lost while the client was away)
    silent_after: int | None = None  # stop sending (keep the socket open) after this many frames, once
    shutdown_after: int | None = None  # send a serverShutdown event after this many frames, once
    pace_s: float = 0.0  # sleep between frames


class BinanceWsServer:
    def __init__(self, recordings: list[Path], script: Script | None = None) -> None:
        merged = sorted((f for path in recordings for f in frames(path)), key=lambda f: f[0])
        self.frames: list[tuple[str, str]] = []
        for _, raw in merged:
            doc = json.loads(raw)
            if "stream" in doc:
                self.frames.append((doc["stream"], raw.decode()))
        self.script = script or Script()
        self.port = free_port()
        self.connections: list[str] = []
        self.sent = 0
        self.position = 0
        self.drop_positions: list[int] = []  # frame index where each dropped connection stopped
        self.done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handler(self, ws: ServerConnection) -> None:
        # the client going away (killed, stopped, reconnecting) is normal here: the next connection resumes
        with contextlib.suppress(ConnectionClosed):
            await self._play(ws)

    async def _play(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        if parts.path != "/stream":
            await ws.close(1008, "only combined streams")
            return
        wanted = set(parse_qs(parts.query).get("streams", [""])[0].split("/"))
        index = len(self.connections)
        self.connections.append(ws.request.path)
        limit = self.script.drop_after[index] if index < len(self.script.drop_after) else None
        if index == 1:
            self.position += self.script.withhold
        sent_here = 0
        while self.position < len(self.frames):
            stream, text = self.frames[self.position]
            self.position += 1
            if stream not in wanted:
                continue
            await ws.send(text)
            self.sent += 1
            sent_here += 1
            if self.script.pace_s:
                await asyncio.sleep(self.script.pace_s)
            elif sent_here % 500 == 0:
                await asyncio.sleep(0)
            if self.script.shutdown_after is not None and self.sent == self.script.shutdown_after:
                await ws.send(json.dumps({"e": "serverShutdown", "E": 1}))
            if self.script.silent_after is not None and self.sent == self.script.silent_after:
                self.script.silent_after = None
                await ws.wait_closed()  # silent: the client's watchdog must notice and reconnect
                return
            if limit is not None and sent_here >= limit:
                self.drop_positions.append(self.position)
                await ws.close(1001, "going away")
                return
        self.done.set()
        await ws.wait_closed()  # keep the connection open like a quiet market

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(self._handler, "127.0.0.1", self.port, max_size=2**22, compression=None):
                self._started.set()
                await self._stop.wait()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        # Finish every handler here, in this thread: a coroutine left pending would be finalised later by the
        # garbage collector in whatever thread runs then (which once broke pytest's own AST parsing).
        async def finish() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.get_running_loop().shutdown_asyncgens()

        self._loop.run_until_complete(finish())
        self._loop.close()

    def start(self) -> BinanceWsServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("WebSocket server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
