"""Fuzz: a real ingest process over a local WebSocket server that sends hypothesis-generated frames (nested,
huge, binary, non-UTF-8, bad stream names, wrong types, out-of-range numbers, foreign symbols) mixed with valid ones.

The frames are labelled valid or invalid by construction (not by asking the parser), and after every batch
the tick stream holds exactly the valid ones and the dead-letter stream exactly the invalid ones, over the one
connection ingest opened at the start: no frame crashed it or made it reconnect.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port, python_module, service_env
from tests.integration.procs import Proc, status, wait_for

pytestmark = pytest.mark.integration



class Frame(NamedTuple):
    valid: bool
    data: str | bytes  # str goes as a text frame, bytes as a binary frame

    def __repr__(self) -> str:  # short: a failing batch's repr must not be megabytes
        return f"Frame({self.valid}, {self.data[:120]!r}{'...' if len(self.data) > 120 else ''} ({len(self.data)}))"


class PushWsServer:
    """Combined-stream endpoint that sends whatever the test pushes, over every open connection."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._queue: asyncio.Queue[str | bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        assert self._queue is not None
        try:
            while True:
                await ws.send(await self._queue.get())
        except ConnectionClosed:
            pass

    def _run(self) -> None:
        async def main() -> None:
            self._queue, self._stop = asyncio.Queue(), asyncio.Event()
            async with serve(self._handler, "127.0.0.1", self.port, max_size=2**22, compression=None):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

        async def finish() -> None:  # end the handlers in this thread, not in a later garbage collection
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self._loop.run_until_complete(finish())
        self._loop.close()

    def start(self) -> PushWsServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def push(self, frames: list[str | bytes]) -> None:
        assert self._queue is not None
        for f in frames:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, f)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


# ---------------------------------------------------------------- frames, labelled by construction

SUBSCRIBED = ("BTCUSDT", "ETHUSDT")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dump(stream: str, data: Any) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"), ensure_ascii=False)


prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("999999"), places=8).map(lambda d: f"{d:.8f}")
ids = st.integers(min_value=1, max_value=2**63 - 1)
symbols = st.sampled_from(SUBSCRIBED)


@st.composite
def trades(draw: st.DrawFn) -> dict[str, Any]:
    t = now_ms() - draw(st.integers(0, 60_000))
    return {"e": "trade", "E": t + 1, "s": draw(symbols), "t": draw(ids), "p": draw(prices), "q": draw(prices),
            "T": t, "m": draw(st.booleans()), "M": True}


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    return {"u": draw(ids), "s": draw(symbols), "b": draw(prices), "B": draw(prices), "a": draw(prices),
            "A": draw(prices)}


@st.composite
def valid_frames(draw: st.DrawFn) -> Frame:
    kind = draw(st.sampled_from(["trade", "bookTicker"]))
    data = draw(trades() if kind == "trade" else books())
    if draw(st.booleans()):
        data["pad"] = "x" * draw(st.sampled_from([10, 100_000]))  # unknown fields are ignored, however long
    text = dump(f"{data['s'].lower()}@{kind}", data)
    return Frame(True, text.encode() if draw(st.booleans()) else text)  # binary frames with valid JSON count too


not_int = st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.lists(st.integers(), max_size=2))
not_str = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.lists(st.integers(), max_size=2))
not_bool = st.one_of(st.integers(), st.text(max_size=3), st.none())
days_ago = st.integers(3 * 86_400_000, 10**12).map(lambda d: now_ms() - d)
out_of_range = {
    "t": st.sampled_from([0, -1, 2**63, 2**70]),
    "T": st.sampled_from([0, -1_735_689_600_000, 10**25]) | days_ago,
    "E": st.sampled_from([0, -5, 2**64]),
    "p": st.sampled_from(["0", "0.00000000", "61837.123456789", "٦١٨٣٧.٦٣", "1e5", "-1.0", "1" + "0" * 20, " 1.0"]),
    "q": st.sampled_from(["0.0", "0.123456789012345678", "１.0", "NaN", ""]),
}


@st.composite
def invalid_frames(draw: st.DrawFn) -> Frame:
    how = draw(st.sampled_from(
        ["text", "binary", "non-utf8", "bad-name", "nested", "huge", "wrong-type", "range", "symbol"]))
    trade = draw(trades())
    stream = f"{trade['s'].lower()}@trade"
    if how == "text":  # anything a broken peer might send; never a subscription reply or a shutdown
        return Frame(False, draw(st.text(max_size=200).filter(lambda s: "result" not in s and "Shutdown" not in s)))
    if how == "binary":
        return Frame(False, draw(st.binary(max_size=200).filter(lambda b: b"result" not in b and b"Shutdown" not in b)))
    if how == "non-utf8":
        text = dump(stream, trade).encode()
        # anywhere, the stream name included ("bad-name" aims there); every position is also checked against the
        # schema path in tests/unit/test_fastparse.py
        at = draw(st.integers(1, len(text) - 1))
        return Frame(False, text[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + text[at:])
    if how == "bad-name":
        # inside the stream name, what no name can hold: a lone surrogate (its bytes pass json.loads), a control
        # character, a space, a byte that is no UTF-8. After the '@' these were once read as a stream not
        # published, skipped instead of dead-lettered (tests/unit/test_parser.py has each case).
        text = dump(stream, trade).encode()
        at = len('{"stream":"') + draw(st.integers(0, len(stream)))
        bad = draw(st.sampled_from([b"\xed\xa0\x80", b"\\ud800", b"\\udfff", b"\\n", b"\\u0000", b" ", b"\xff"]))
        return Frame(False, text[:at] + bad + text[at:])
    if how == "nested":
        depth = draw(st.integers(100, 100_000))
        open_, close = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        body = open_ * depth + b"1" + close * depth if open_ != b"[" else open_ * depth + close * depth
        inside = draw(st.booleans())
        return Frame(False, (b'{"stream":"' + stream.encode() + b'","data":' + body + b"}") if inside else body)
    if how == "huge":
        return Frame(False, draw(st.binary(min_size=1, max_size=16)).replace(b"result", b"").ljust(1, b"x") * 60_000)
    if how == "wrong-type":
        field = draw(st.sampled_from(["t", "T", "E", "p", "q", "m", "s"]))
        bad = draw(not_int if field in "tTE" else not_str if field in "pqs" else not_bool)
        return Frame(False, dump(stream, trade | {field: bad}))
    if how == "range":
        field = draw(st.sampled_from(sorted(out_of_range)))
        return Frame(False, dump(stream, trade | {field: draw(out_of_range[field])}))
    # "symbol": the payload's symbol is not the stream's, or not subscribed at all
    other = draw(st.sampled_from(["SOLUSDT", next(s for s in SUBSCRIBED if s != trade["s"])]))
    # a subscribed symbol is wrong only under another symbol's stream; SOLUSDT is wrong under any
    target = f"{other.lower()}@trade" if other == "SOLUSDT" and draw(st.booleans()) else stream
    return Frame(False, dump(target, trade | {"s": other}))


def test_no_frame_stops_ingest_and_each_is_published_or_dead_lettered(tmp_path, redis_server):
    r = redis_server.client()
    ws = PushWsServer().start()
    ingest = Proc(python_module("ingest"), service_env(
        redis_server.url, SOURCE="binance", BINANCE_WS_URL=f"ws://127.0.0.1:{ws.port}", SYMBOLS="btcusdt,ethusdt",
        STALE_FEED_S="120"), tmp_path / "ingest.log")
    sent = {"valid": 0, "invalid": 0, "batches": 0}
    try:
        wait_for(lambda: ws.connections == 1 and r.exists("stream:ticks"), 30, "ingest to connect")

        # no shrinking: the examples share one ingest process and its counters, so a smaller one proves nothing
        @settings(max_examples=40, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(st.one_of(valid_frames(), invalid_frames()), min_size=5, max_size=25))
        def batch(frames: list[Frame]) -> None:
            ws.push([f for _, f in frames])
            sent["valid"] += sum(ok for ok, _ in frames)
            sent["invalid"] += sum(not ok for ok, _ in frames)
            sent["batches"] += 1
            want = (sent["valid"], sent["invalid"])
            wait_for(lambda: (r.xlen("stream:ticks"), r.xlen("stream:deadletter")) == want, 30,
                     f"{want} ticks and dead letters (have {r.xlen('stream:ticks')}, {r.xlen('stream:deadletter')})")
            assert ingest.p.poll() is None, ingest.log()

        batch()
        st_ingest = wait_for(lambda: (s := status(r, "ingest")).get("dead_letters") == sent["invalid"] and s, 10,
                             "the status record")
    finally:
        assert ingest.stop() == 0, ingest.log()
        ws.stop()
    assert ws.connections == 1, "a frame made ingest reconnect"
    assert sent["batches"] >= 20 and sent["valid"] > 50 and sent["invalid"] > 50, sent
    assert st_ingest["published"] == sent["valid"]
    assert sum(st_ingest["dead_letter_reasons"].values()) == sent["invalid"]
    assert st_ingest["gaps"] == 0
    for _, entry in r.xrange("stream:deadletter"):
        assert entry[b"reason"] and len(entry[b"raw"]) <= 64 * 1024 and entry[b"source"] == b"binance"
    assert "Traceback" not in ingest.log()
