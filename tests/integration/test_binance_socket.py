"""The live source's socket side (picows) against a real `websockets` server: what the `websockets` client used to
do for us and picows leaves to ingest (ingest/sources/binance_socket.py).

- the server's pings are answered (Binance disconnects a client that does not answer);
- a message sent in several frames arrives whole, and binary frames arrive as sent;
- a close frame from the server ends the connection with its code in the reason;
- a consumer that falls behind holds the socket back (no frame lost, none reordered) and is not mistaken for a
  stale feed, however long it is behind, while the server still has frames to send.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ingest.sources.base import FeedEvent
from ingest.sources.binance import OUT_QUEUE, BinanceSource

pytestmark = pytest.mark.integration


def frame(i: int) -> str:
    return json.dumps({"stream": "btcusdt@trade", "data": {"t": i}}, separators=(",", ":"))


class ServerThread:
    """A `websockets` server in a thread of its own, with its own event loop: a server sharing the client's loop
    could hold it for longer than a stale interval while it writes, which is no property of the client."""

    def __init__(self, handler: Callable[[ServerConnection], Awaitable[None]]) -> None:
        self.handler = handler
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self.handler, "127.0.0.1", 0, compression=None, max_size=2**22) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=False)
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _run(handler: Callable[[ServerConnection], Awaitable[None]],
         consume: Callable[[BinanceSource, Any], Awaitable[Any]], stale_s: float = 10.0) -> Any:
    async def client(port: int) -> Any:
        source = BinanceSource(f"ws://127.0.0.1:{port}", ("BTCUSDT",), stale_s=stale_s)
        batches = source.batches()
        try:
            return await asyncio.wait_for(consume(source, batches), 60)
        finally:
            await batches.aclose()

    with ServerThread(handler) as server:
        return asyncio.run(client(server.port))


async def _frames_and_events(batches: Any, n: int) -> tuple[list[bytes], list[FeedEvent]]:
    raws: list[bytes] = []
    events: list[FeedEvent] = []
    async for batch in batches:
        for item in batch:
            if isinstance(item, FeedEvent):
                events.append(item)
            else:
                raws.append(item[1])
        if len(raws) >= n:
            return raws, events
    raise AssertionError("the source ended")


def test_pings_are_answered_and_fragmented_and_binary_messages_arrive_whole():
    pongs: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        waiter = await ws.ping(b"still there?")
        pongs.append(await asyncio.wait_for(waiter, 5))  # the latency, once picows answered
        whole = frame(1)
        await ws.send([whole[:10], whole[10:20], whole[20:]])  # one text message in three frames
        await ws.send(frame(2).encode())  # a binary frame: handed on as is, for the parser to judge
        await ws.wait_closed()

    async def consume(source: BinanceSource, batches: Any) -> list[bytes]:
        raws, _ = await _frames_and_events(batches, 2)
        return raws

    raws = (_run(handler, consume))
    assert len(pongs) == 1
    assert raws == [frame(1).encode(), frame(2).encode()]


def test_a_close_from_the_server_is_a_disconnect_with_its_code():
    async def handler(ws: ServerConnection) -> None:
        await ws.send(frame(1))
        await ws.close(1001, "going away")

    async def consume(source: BinanceSource, batches: Any) -> list[FeedEvent]:
        events: list[FeedEvent] = []
        async for batch in batches:
            events += [item for item in batch if isinstance(item, FeedEvent)]
            if any(e.kind == "disconnected" for e in events):
                return events
        raise AssertionError("the source ended")

    events = (_run(handler, consume))
    gone = next(e for e in events if e.kind == "disconnected")
    assert gone.reason.startswith("connection closed: received 1001 (going away) going away"), gone.reason
    assert gone.symbols == frozenset({"BTCUSDT"})


def test_a_slow_consumer_holds_the_socket_back_without_losing_frames_or_calling_the_feed_stale():
    total = 10 * OUT_QUEUE  # far more than the inbox holds before it pauses the socket

    async def handler(ws: ServerConnection) -> None:
        for i in range(total):
            await ws.send(frame(i))
            if i % 100 == 0:
                await asyncio.sleep(0)  # a real feed arrives over time, not in one write
        await ws.wait_closed()

    async def consume(source: BinanceSource, batches: Any) -> tuple[list[bytes], list[FeedEvent], int]:
        first = await anext(batches)
        await asyncio.sleep(3.0)  # three stale intervals behind, while the server still has frames to send
        assert source._out is not None
        held = source._out.frames  # what waited in the inbox: bounded by the pause, not by the server
        raws = [item[1] for item in first if not isinstance(item, FeedEvent)]
        more, events = await _frames_and_events(batches, total - len(raws))
        return raws + more, [item for item in first if isinstance(item, FeedEvent)] + events, held

    raws, events, held = (_run(handler, consume, stale_s=1.0))
    assert [e.kind for e in events] == ["connected"], events  # never reconnected: not stale, not dropped
    assert raws == [frame(i).encode() for i in range(total)]
    assert held < total // 4, held  # the pause bound plus the rest of one socket read, not the whole backlog
