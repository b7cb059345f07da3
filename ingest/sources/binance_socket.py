"""The socket side of a Binance connection: picows callbacks turned into batches of frames, and the inbox they
go to.

picows (Cython) parses WebSocket frames off the socket and calls `on_ws_frame` for each, with no coroutine or
queue per frame: it takes our recorded frames off a local socket 7 to 11 times faster than the `websockets`
client's `recv()` (docs/benchmarks.md, "Ingest (issue 12)"). Frames of one socket read share one receive time
and go to the inbox as one list. What `websockets` did for us is done here: answering pings (picows' auto-pong),
pinging an idle server, closing on the server's close frame, reassembling fragmented messages, bounding their
size, and holding the socket back while ingest is behind (the inbox pauses reading instead of a full queue).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from ingest.sources.base import FeedEvent
from qs_common.venues.binance.wire import MethodReply, method_reply

if TYPE_CHECKING:
    from ingest.sources.binance_link import Link

# picows logs every connect and disconnect at INFO with socket details; ours already say both, with the reason
logging.getLogger("picows.binance").setLevel(logging.WARNING)

MAX_MESSAGE = 2**22  # bytes; a larger message closes the connection (1009), as `websockets`' max_size did
_STREAM_FRAME = b'{"stream":'
_TEXT = WSMsgType.TEXT
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)

Frames = list[tuple[int, bytes]]  # (recv_ns, raw) of one socket read


@dataclass(frozen=True, slots=True)
class Reply:
    """A venue reply read on `link`, queued behind the frames read before it: when the source handles it, every
    earlier frame of that connection has been handed to ingest."""

    link: Link
    reply: MethodReply


InboxItem = Frames | FeedEvent | Reply


class Inbox:
    """What every connection of a source hands its one consumer, in arrival order: batches of frames, replies
    and connection events. Past `high` frames waiting it pauses the sockets, until the consumer is under half."""

    def __init__(self, high: int) -> None:
        self.items: deque[InboxItem] = deque()
        self.frames = 0
        self.high = high
        self._paused: set[Connection] = set()
        self._wake = asyncio.Event()

    def put_frames(self, batch: Frames, conn: Connection) -> None:
        self.items.append(batch)
        self.frames += len(batch)
        self._wake.set()
        if self.frames >= self.high and conn not in self._paused:
            self._paused.add(conn)
            conn.pause()

    def put(self, item: FeedEvent | Reply) -> None:
        self.items.append(item)
        self._wake.set()

    def forget(self, conn: Connection) -> None:
        self._paused.discard(conn)

    def take(self) -> InboxItem | None:
        """The next item, or None when empty."""
        if not self.items:
            return None
        item = self.items.popleft()
        if isinstance(item, list):
            self.frames -= len(item)
            if self._paused and self.frames < self.high // 2:
                for conn in self._paused:
                    conn.resume()
                self._paused.clear()
        return item

    async def get(self) -> InboxItem:
        while not self.items:
            self._wake.clear()
            await self._wake.wait()
        item = self.take()
        assert item is not None
        return item


class Connection(WSListener):  # type: ignore[misc]  # picows ships no types for its Cython base class
    """One open WebSocket of a `Link`. `closed` resolves to why it ended (the first reason wins)."""

    def __init__(self, link: Link, inbox: Inbox, stale_s: float, reconnect_after_s: float,
                 in_url: set[str]) -> None:
        self.link = link
        self.in_url = in_url  # the streams the URL asked for
        self.inbox = inbox
        self.stale_s = stale_s
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = self.loop.create_future()
        self.transport: WSTransport | None = None
        self._batch: Frames = []
        self._recv_ns = 0
        self.reconnect_after_s = reconnect_after_s
        self._last_rx = 0.0
        self._paused = False
        self._parts: list[bytes] | None = None  # a fragmented message being reassembled
        self._ending = False  # the connection is being closed: later frames are not handed on
        self._watchdog: asyncio.TimerHandle | None = None
        self._cut: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # here, not once `ws_connect` returns: frames of the first read are handed on before that
        self.link.opened(self.inbox, self.in_url)
        self._last_rx = self.loop.time()
        self._watchdog = self.loop.call_at(self._last_rx + self.stale_s, self._check_stale)
        self._cut = self.loop.call_later(self.reconnect_after_s, self.close,
                                         "scheduled reconnect before the 24 h cut")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # The common case first, in as few steps as possible: a whole text frame of a stream, not the last of a
        # shutdown; everything else (replies, fragments, close, binary, serverShutdown) takes `_other`.
        if frame.msg_type is _TEXT and frame.fin and self._parts is None and not self._ending:
            raw = frame.get_payload_as_bytes()
            if raw.startswith(_STREAM_FRAME) and b"serverShutdown" not in raw:
                batch = self._batch
                if not batch:
                    self._recv_ns = time.time_ns()  # the frames of one socket read arrived together
                batch.append((self._recv_ns, raw))
                if frame.last_in_buffer:
                    self._hand_on()
                return
            self._message(raw)
        else:
            self._other(transport, frame)
        if frame.last_in_buffer:
            self._hand_on()

    def _other(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            self._remote_close(transport, frame)
            return
        raw = frame.get_payload_as_bytes() if kind in _DATA and frame.fin and self._parts is None \
            else self._fragment(kind, frame)
        if raw is not None and not self._ending:
            self._message(raw)

    def _message(self, raw: bytes) -> None:
        """A whole message that is not a plain stream frame: a reply, a shutdown notice or anything else."""
        if not self._batch:
            self._recv_ns = time.time_ns()
        if not raw.startswith(_STREAM_FRAME) and (reply := method_reply(raw)) is not None:
            self._hand_on()  # the reply goes behind every frame read before it
            self.inbox.put(Reply(self.link, reply))
            return
        self._batch.append((self._recv_ns, raw))  # anything else is the parser's to judge
        if b"serverShutdown" in raw:
            self._hand_on()
            self.close("venue announced serverShutdown")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._hand_on()
        self._stop_timers()
        self.inbox.forget(self)
        hs = transport.close_handshake
        if hs is not None and hs.recv is not None:
            info = hs.recv
            why = f"received {info.code.value} ({info.code.name.lower().replace('_', ' ')}) {info.reason}".rstrip()
        elif hs is not None and hs.sent is not None:
            why = f"sent {hs.sent.code.value} ({hs.sent.code.name.lower().replace('_', ' ')}), no close frame received"
        else:
            why = "no close frame received or sent"
        self._end(f"connection closed: {why}")

    # ------------------------------------------------------------------ our side

    def _hand_on(self) -> None:
        if self._batch:
            self.inbox.put_frames(self._batch, self)
            self._batch = []
            self._last_rx = self.loop.time()
            self.link.attempt = 0

    def _fragment(self, kind: WSMsgType, frame: WSFrame) -> bytes | None:
        """A message sent in several frames, once its last one is in; None until then (and for control frames)."""
        if kind in _DATA:
            self._parts = [frame.get_payload_as_bytes()]
        elif kind is WSMsgType.CONTINUATION and self._parts is not None:
            self._parts.append(frame.get_payload_as_bytes())
        else:  # an unsolicited pong, or a continuation of nothing (picows answers pings itself)
            return None
        if sum(map(len, self._parts)) > MAX_MESSAGE:
            self._parts = None
            self.close("message over 4 MiB", WSCloseCode.MESSAGE_TOO_BIG)
            return None
        if not frame.fin:
            return None
        raw, self._parts = b"".join(self._parts), None
        return raw

    def _remote_close(self, transport: WSTransport, frame: WSFrame) -> None:
        self._hand_on()
        if not transport.is_close_frame_sent:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
        transport.disconnect()

    def _check_stale(self) -> None:
        due = self._last_rx + self.stale_s
        if self._paused or self.loop.time() < due:  # a held-back socket is ingest being slow, not a stale feed
            self._watchdog = self.loop.call_at(max(due, self.loop.time() + 0.05), self._check_stale)
            return
        self.close(f"stale feed: no frame for {self.stale_s:g} s")

    def pause(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.underlying_transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self._last_rx = self.loop.time()
            self.transport.underlying_transport.resume_reading()

    def close(self, reason: str, code: WSCloseCode = WSCloseCode.OK) -> None:
        """Close with `reason` as the connection's end (a later reason, such as the socket closing, is ignored)."""
        self._ending = True
        self._end(reason)
        self._stop_timers()
        if self.transport is not None and not self.transport.is_disconnected:
            if not self.transport.is_close_frame_sent:
                self.transport.send_close(code)
            self.transport.disconnect()

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)

    def _stop_timers(self) -> None:
        for timer in (self._watchdog, self._cut):
            if timer is not None:
                timer.cancel()
