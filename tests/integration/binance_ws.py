"""A local WebSocket server that speaks Binance's combined-stream protocol and plays recorded frames.

`/stream?streams=btcusdt@trade/ethusdt@bookTicker/...` gets, in receive order, the recorded frames of exactly
those streams, as the text Binance sent. Scenarios for failure tests: close the connection after a number of
frames and skip (withhold) some frames before the next connection resumes; send `serverShutdown`; go silent.

Live subscription as Binance's stream servers do it (spot "WebSocket Streams" docs): a connection may send
`{"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":[streams],"id":N}` and `{"method":"LIST_SUBSCRIPTIONS","id":N}`;
answers `{"result":null,"id":N}`, the list for LIST_SUBSCRIPTIONS, or `{"error":{"code":C,"msg":...},"id":N}`
(code 3 unreadable JSON, code 2 an invalid request: unknown method, id not an unsigned integer, a bad stream).
A 6th message within one second closes the connection (1008 "Too many requests"), as Binance does; a connection
holds at most 1,024 streams (a longer URL is refused, a SUBSCRIBE past it answered with an error: Binance
documents the bound, not the answer, so this error is ours). Every request is recorded (`requests`).

`Script.generate_hz` > 0 makes trades instead of playing recordings: every subscribed `@trade` stream gets a trade
(ids 1, 2, 3... per symbol across connections, today's clock) and every `@bookTicker` stream a quote, that many
times a second; `sent_trades` keeps the ids sent per symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
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
    generate_hz: float = 0.0  # > 0: generated trades and quotes per subscribed stream per second, no recordings


MAX_STREAMS = 1_024
MAX_MESSAGES_PER_S = 5
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
KINDS = ("trade", "bookTicker", "depth@100ms", "depth", "aggTrade")


@dataclass
class Received:
    """One message a client sent: its connection, when (monotonic s) and the text."""

    conn: int
    at: float
    text: str

    @property
    def doc(self) -> dict:
        try:
            doc = json.loads(self.text)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}


def _error(code: int, msg: str, rid: object = None) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": rid})


def _valid_stream(name: object) -> bool:
    if not isinstance(name, str) or "@" not in name:
        return False
    sym, _, kind = name.partition("@")
    return sym.isalnum() and sym == sym.lower() and kind in KINDS


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
        self.requests: list[Received] = []
        self.subscriptions: dict[int, set[str]] = {}  # connection index -> its streams, while it is open
        self.rate_closes = 0  # connections closed for a 6th message within a second
        self.sent_trades: dict[str, list[int]] = {}  # generated mode: trade ids sent per symbol
        self.done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        if parts.path != "/stream":
            await ws.close(1008, "only combined streams")
            return
        wanted = {s for s in parse_qs(parts.query).get("streams", [""])[0].split("/") if s}
        if len(wanted) > MAX_STREAMS:
            await ws.close(1008, f"at most {MAX_STREAMS} streams")
            return
        index = len(self.connections)
        self.connections.append(ws.request.path)
        self.subscriptions[index] = wanted
        # the client going away (killed, stopped, reconnecting) is normal here: the next connection resumes
        reader = asyncio.create_task(self._serve_requests(ws, index, wanted))
        try:
            with contextlib.suppress(ConnectionClosed):
                await (self._generate(ws, wanted) if self.script.generate_hz > 0 else self._play(ws, index, wanted))
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self.subscriptions.pop(index, None)

    async def _serve_requests(self, ws: ServerConnection, index: int, wanted: set[str]) -> None:
        recent: deque[float] = deque()
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                now = time.monotonic()
                text = message if isinstance(message, str) else message.decode(errors="replace")
                self.requests.append(Received(index, now, text))
                recent.append(now)
                while recent and now - recent[0] >= 1.0:
                    recent.popleft()
                if len(recent) > MAX_MESSAGES_PER_S:
                    self.rate_closes += 1
                    await ws.close(1008, "Too many requests")
                    return
                await ws.send(self._answer(text, wanted))

    def _answer(self, text: str, wanted: set[str]) -> str:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            return _error(3, f"Invalid JSON: {exc}")
        if not isinstance(doc, dict):
            return _error(2, "Invalid request: expected an object")
        rid = doc.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
            return _error(2, "Invalid request: request ID must be an unsigned integer")
        method = doc.get("method")
        if method not in METHODS:
            return _error(2, f"Invalid request: unknown variant {str(method)[:40]}, expected one of "
                             f"{', '.join(METHODS)}", rid)
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(wanted), "id": rid})
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return json.dumps({"result": True if method == "GET_PROPERTY" else None, "id": rid})
        params = doc.get("params")
        if not isinstance(params, list) or not all(_valid_stream(p) for p in params):
            return _error(2, "Invalid request: invalid stream", rid)
        if method == "SUBSCRIBE":
            if len(wanted | set(params)) > MAX_STREAMS:
                return _error(2, f"Invalid request: at most {MAX_STREAMS} streams per connection", rid)
            wanted.update(params)
        else:
            wanted.difference_update(params)
        return json.dumps({"result": None, "id": rid})

    async def _generate(self, ws: ServerConnection, wanted: set[str]) -> None:
        """Made-up trades and quotes for every subscribed stream, `generate_hz` times a second."""
        while True:
            now_ms = time.time_ns() // 1_000_000
            for stream in sorted(wanted):
                if stream not in wanted:  # unsubscribed while this round was being sent
                    continue
                sym, _, kind = stream.partition("@")
                symbol = sym.upper()
                if kind == "trade":
                    ids = self.sent_trades.setdefault(symbol, [])
                    ids.append(len(ids) + 1)
                    data: dict[str, object] = {
                        "e": "trade", "E": now_ms, "s": symbol, "t": ids[-1], "p": "100.01000000",
                        "q": "0.50000000", "T": now_ms, "m": ids[-1] % 2 == 0, "M": True}
                elif kind == "bookTicker":
                    data = {"u": now_ms, "s": symbol, "b": "100.00000000", "B": "1.00000000",
                            "a": "100.01000000", "A": "2.00000000"}
                else:
                    continue
                await ws.send(json.dumps({"stream": stream, "data": data}, separators=(",", ":")))
                self.sent += 1
            await asyncio.sleep(1 / self.script.generate_hz)

    async def _play(self, ws: ServerConnection, index: int, wanted: set[str]) -> None:
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
