"""Symbols at runtime, the pure parts: the send pace, reply recognition, which symbol rides on which connection,
request merging, the gap rules of a removed symbol and the parser's subscribed set."""

from __future__ import annotations

import asyncio
import json

import pytest

from ingest.loop import GapTracker
from ingest.parser import UNSUBSCRIBED, EdgeRules, Rejected, parse_frame
from ingest.sources.binance import BinanceSource
from ingest.sources.binance_link import Request
from ingest.sources.pacing import TokenBucket
from ingest.sources.synthetic import SyntheticSource
from qs_common.models import Trade
from qs_common.venues.binance.config import (
    SUBSCRIBE,
    UNSUBSCRIBE,
    WS_MAX_INCOMING_PER_S,
    WS_MAX_STREAMS,
    WS_SEND_BURST,
    WS_SEND_RATE_PER_S,
)
from qs_common.venues.binance.wire import method_reply, method_request, trade_frame


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_token_bucket_never_lets_five_messages_into_one_second():
    clock = FakeClock()
    bucket = TokenBucket(WS_SEND_RATE_PER_S, WS_SEND_BURST, clock)
    sent: list[float] = []
    # a client that sends as soon as the bucket allows, for 20 simulated seconds, polling every millisecond
    while clock.t < 1020.0:
        if bucket.wait_s() == 0.0:
            sent.append(clock.t)
        clock.t += 0.001
        if 1005.0 < clock.t < 1008.0:
            clock.t += 0.5  # idle stretches: the bucket refills to its burst
    # a closed window of one second (a message at each end counts), as strict as a counter can be
    worst = max(sum(1 for s in sent if start <= s <= start + 1.0 + 1e-9) for start in sent)
    assert worst < WS_MAX_INCOMING_PER_S  # one below Binance's limit: room for a pong
    assert worst <= WS_SEND_BURST + WS_SEND_RATE_PER_S  # the bound the module states
    assert len(sent) >= 17 * WS_SEND_RATE_PER_S  # and it does let the rate through (3 s of the 20 idle)


def test_the_token_bucket_tells_how_long_to_wait():
    clock = FakeClock()
    bucket = TokenBucket(2.0, 1, clock)
    assert bucket.wait_s() == 0.0
    assert bucket.wait_s() == pytest.approx(0.5)
    clock.t += 0.25
    assert bucket.wait_s() == pytest.approx(0.25)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


@pytest.mark.parametrize(("raw", "rid", "result", "error"), [
    (b'{"result":null,"id":7}', 7, None, ""),
    (b'{"result":["btcusdt@trade","ethusdt@trade"],"id":8}', 8, ["btcusdt@trade", "ethusdt@trade"], ""),
    (b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":9}', 9, None,
     "code 2: Invalid request: invalid stream"),
    (b'{"error":{"code":3,"msg":"Invalid JSON"},"id":null}', None, None, "code 3: Invalid JSON"),
])
def test_replies_are_recognised(raw, rid, result, error):
    reply = method_reply(raw)
    assert reply is not None
    assert (reply.id, reply.result, reply.error_text) == (rid, result, error)


@pytest.mark.parametrize("raw", [
    trade_frame("BTCUSDT", 1, "1.0", "1.0", 1, True),  # a stream frame, even one that says "id" somewhere
    b'{"stream":"x@trade","data":{"id":1,"result":null}}',
    b'{"e":"serverShutdown","E":1}', b'{"id":5}', b"not json", b"[1,2]", b'{"result":null}',
])
def test_anything_else_is_not_a_reply(raw):
    assert method_reply(raw) is None


def test_requests_are_binance_text():
    assert json.loads(method_request(SUBSCRIBE, 3, ["btcusdt@trade"])) == {
        "method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}
    assert json.loads(method_request("LIST_SUBSCRIPTIONS", 4)) == {"method": "LIST_SUBSCRIPTIONS", "id": 4}


def symbols(n: int) -> tuple[str, ...]:
    return tuple(f"S{i:04d}USDT" for i in range(n))


def test_past_1024_streams_a_second_connection_takes_the_rest_and_a_symbol_never_splits():
    src = BinanceSource("ws://x", symbols(550))  # 1,100 streams
    assert [len(k.symbols) for k in src.links] == [512, 38]
    assert [len(src.streams_of(k.symbols)) for k in src.links] == [WS_MAX_STREAMS, 76]
    deep = BinanceSource("ws://x", symbols(400), depth=True)  # three streams a symbol: 341 fit (1,023)
    assert [len(k.symbols) for k in deep.links] == [341, 59]
    assert all(len(deep.streams_of(k.symbols)) <= WS_MAX_STREAMS for k in deep.links)


def test_symbols_go_where_there_is_room_and_removed_ones_leave():
    src = BinanceSource("ws://x", symbols(550))

    async def change() -> None:
        await src.set_symbols(symbols(500))  # the second connection empties: it goes
        assert [len(k.symbols) for k in src.links] == [500]
        await src.set_symbols((*symbols(500), "NEWUSDT"))
        assert "NEWUSDT" in src.links[0].symbols

    asyncio.run(change())


def test_an_open_connection_gets_unsubscribe_then_subscribe_of_the_difference():
    async def run() -> None:
        src = BinanceSource("ws://x", ("BTCUSDT", "ETHUSDT"))
        link = src.links[0]
        link.sent = {"btcusdt@trade", "btcusdt@bookTicker", "ethusdt@trade", "ethusdt@bookTicker"}  # connected
        src._assign(("BTCUSDT", "SOLUSDT"))
        link.sync()
        assert [(r.method, r.params) for r in link.outbox] == [
            (UNSUBSCRIBE, ["ethusdt@trade", "ethusdt@bookTicker"]),
            (SUBSCRIBE, ["solusdt@trade", "solusdt@bookTicker"])]
        assert link.sync() == []  # nothing left to ask
        link.outbox.clear()
        link.sent = None  # disconnected: the next connect subscribes the current set, no request now
        src._assign(("BTCUSDT",))
        assert link.sync() == [] and not link.outbox

    asyncio.run(run())


def test_consecutive_requests_of_one_method_leave_as_one_message():
    async def run() -> None:
        src = BinanceSource("ws://x", ("BTCUSDT",))
        link = src.links[0]
        for i in range(20):
            link.outbox.append(Request(SUBSCRIBE, [f"s{i}usdt@trade", f"s{i}usdt@bookTicker"]))
        link.outbox.append(Request(UNSUBSCRIBE, ["s0usdt@trade"]))
        link.outbox.extend(Request(SUBSCRIBE, [f"t{i}usdt@trade"] * 150) for i in range(2))
        messages = []
        while link.outbox:
            method, params, batch = link._next_message()
            messages.append((method, len(params or []), len(batch)))
        # 20 requests -> one message of 40 streams; never two methods in one; at most 200 streams a message
        assert messages == [(SUBSCRIBE, 40, 20), (UNSUBSCRIBE, 1, 1), (SUBSCRIBE, 150, 1), (SUBSCRIBE, 150, 1)]

    asyncio.run(run())


def test_the_parser_subscribed_set_changes_at_runtime():
    rules = EdgeRules(frozenset({"BTCUSDT"}))
    frame = trade_frame("SOLUSDT", 5, "150.1", "2", 1_700_000_000_000, False)
    rejected = parse_frame(1, frame, rules)
    assert isinstance(rejected, Rejected) and rejected.kind == UNSUBSCRIBED
    rules.set_symbols(frozenset({"BTCUSDT", "solusdt"}))
    assert isinstance(parse_frame(1, frame, rules), Trade)
    rules.set_symbols(frozenset({"BTCUSDT"}))
    assert isinstance(parse_frame(1, frame, rules), Rejected)


def test_a_dropped_connection_opens_gaps_only_for_its_symbols_and_a_removed_symbol_has_none():
    gaps = GapTracker()
    gaps.trade("BTCUSDT", 100)
    gaps.trade("SOLUSDT", 110)
    gaps.disconnected("connection 1: closed", frozenset({"SOLUSDT"}))
    assert gaps.trade("BTCUSDT", 120) is None  # its connection stayed up
    assert gaps.trade("SOLUSDT", 200) == (110, 200, "connection 1: closed")
    gaps.disconnected("all")  # no symbols named: every symbol
    gaps.forget("SOLUSDT")  # unsubscribed on purpose
    assert gaps.trade("SOLUSDT", 900) is None  # re-added later: a fresh start, not a gap over the time off
    assert gaps.trade("BTCUSDT", 300) == (120, 300, "all")


def test_the_synthetic_source_starts_and_stops_symbols_at_runtime():
    async def run() -> set[str]:
        src = SyntheticSource(("BTCUSDT", "ETHUSDT"), seed=3, rate=2000.0, limit=3000)
        seen: set[str] = set()
        n = 0
        async for item in src.items():
            if not isinstance(item, tuple):
                continue
            n += 1
            sym = json.loads(item[1])["data"]["s"]
            if n == 500:
                await src.set_symbols(("BTCUSDT", "SOLUSDT"))
                seen.clear()
            elif n > 500:
                seen.add(sym)
        assert src.prices["SOLUSDT"] > 0 and src.model_symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
        return seen

    assert asyncio.run(run()) == {"BTCUSDT", "SOLUSDT"}
