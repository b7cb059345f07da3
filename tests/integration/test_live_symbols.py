"""Symbols at runtime (issue 10): `python -m ingest` follows the Redis registry on its open connections.

Real parts: a private redis-server, ingest as a subprocess, and the local server speaking Binance's combined-stream
protocol with SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, its 5-messages-a-second disconnect and its 1,024-stream
bound. The server makes trades for whatever is subscribed (ids 1, 2, 3... per symbol), so a gap shows as a
missing id.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
import websockets
from websockets.exceptions import ConnectionClosed

from ingest.sources.binance import BinanceSource
from qs_common import codec, control
from qs_common.models import Trade
from tests.conftest import python_module, service_env
from tests.integration.binance_ws import MAX_MESSAGES_PER_S, BinanceWsServer, Received, Script
from tests.integration.procs import Proc, status, wait_for

pytestmark = pytest.mark.integration


def start_ingest(redis_url: str, ws: BinanceWsServer, log, **env: str) -> Proc:
    return Proc(python_module("ingest"), service_env(
        redis_url, **({"SOURCE": "binance", "BINANCE_WS_URL": ws.url, "SYMBOLS": "btcusdt,ethusdt",
                       "DEPTH": "false"} | env)), log)


def trade_ids(r: redis.Redis) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for _, fields in r.xrange("stream:ticks"):
        tick = codec.decode(fields)
        if isinstance(tick, Trade):
            out.setdefault(tick.symbol, []).append(tick.trade_id)
    return out


def requests(ws: BinanceWsServer, method: str) -> list[Received]:
    return [q for q in ws.requests if q.doc.get("method") == method]


def subscribed(ws: BinanceWsServer, symbol: str) -> bool:
    return any(f"{symbol.lower()}@trade" in s for s in ws.subscriptions.values())


def busiest_second(ws: BinanceWsServer) -> int:
    """Most messages one connection sent within one second (a closed window)."""
    worst = 0
    for q in ws.requests:
        worst = max(worst, sum(1 for o in ws.requests if o.conn == q.conn and q.at <= o.at <= q.at + 1.0))
    return worst


def consecutive(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids)))


def test_symbols_added_and_removed_while_running_and_the_set_survives_a_restart(tmp_path, redis_server):
    r = redis_server.client()
    ws = BinanceWsServer([], Script(generate_hz=20)).start()
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest.log")
    try:
        wait_for(lambda: len(trade_ids(r).get("BTCUSDT", [])) > 20, 60, "BTC trades")
        assert control.active_symbols(r) == ("BTCUSDT", "ETHUSDT")  # seeded from SYMBOLS

        # add: SUBSCRIBE on the open connection, its trades arrive, nothing else is interrupted
        control.add_symbol(r, "SOLUSDT")
        wait_for(lambda: len(trade_ids(r).get("SOLUSDT", [])) > 20, 30, "SOL trades")
        sub = requests(ws, "SUBSCRIBE")
        assert [q.doc["params"] for q in sub] == [["solusdt@trade", "solusdt@bookTicker"]]
        assert len(ws.connections) == 1 and ws.rate_closes == 0

        # remove: UNSUBSCRIBE, and SOL's trades stop
        control.remove_symbol(r, "SOLUSDT")
        wait_for(lambda: not subscribed(ws, "SOLUSDT"), 30, "SOL unsubscribed")
        assert [q.doc["params"] for q in requests(ws, "UNSUBSCRIBE")] == [["solusdt@trade", "solusdt@bookTicker"]]
        # every SOL trade sent is published once what was in flight is through, and none after
        sol_after = wait_for(lambda: (n := len(trade_ids(r)["SOLUSDT"])) == len(ws.sent_trades["SOLUSDT"]) and n, 30,
                             "every SOL trade sent to be published")
        time.sleep(1.5)
        assert len(trade_ids(r)["SOLUSDT"]) == sol_after and len(ws.sent_trades["SOLUSDT"]) == sol_after

        # a burst of 20 changes: all applied, no request over the pace (the server would have disconnected)
        burst = [f"X{i:02d}USDT" for i in range(20)]
        for i, sym in enumerate(burst):
            control.add_symbol(r, sym)
            time.sleep(0.05 * (i % 4))  # some in one poll, some across polls
        wait_for(lambda: all(subscribed(ws, s) for s in burst), 60, "the burst subscribed")
        assert ws.rate_closes == 0 and len(ws.connections) == 1
        assert busiest_second(ws) < MAX_MESSAGES_PER_S

        # the old streams were never interrupted: no reconnect, no gap record, every BTC/ETH trade id in order
        # (once ingest's status beat has counted the burst)
        wait_for(lambda: status(r, "ingest").get("symbols_active") == 22, 30, "the status to count the burst")
        ids = trade_ids(r)
        for sym in ("BTCUSDT", "ETHUSDT"):
            assert consecutive(ids[sym]), sym
        assert consecutive(ids["SOLUSDT"]) and ids["SOLUSDT"][0] == 1
        assert r.xlen("stream:gaps") == 0
        st = status(r, "ingest")
        assert st["dead_letters"] == 0, st["dead_letter_reasons"]
        assert st["connections_open"] == 1 and st["subscribe_errors"] == 0 and st["symbols_active"] == 22
        assert st["streams"] == 44
    finally:
        assert ingest.stop() == 0, ingest.log()

    # restart with a different SYMBOLS: the registry, not SYMBOLS, decides what is subscribed
    expected = {"BTCUSDT", "ETHUSDT", *burst}
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest2.log", SYMBOLS="adausdt")
    try:
        wait_for(lambda: len(ws.connections) == 2 and ws.subscriptions.get(1), 30, "the second run's connection")
        wait_for(lambda: {s.split("@")[0].upper() for s in ws.subscriptions[1]} == expected, 30, "the same set")
        assert not subscribed(ws, "ADAUSDT") and not subscribed(ws, "SOLUSDT")
    finally:
        assert ingest.stop() == 0, ingest.log()
        ws.stop()
    assert "symbols from the registry: +SOLUSDT -none" in (tmp_path / "ingest.log").read_text()


def test_past_1024_streams_ingest_opens_a_second_connection(tmp_path, redis_server):
    r = redis_server.client()
    many = [f"S{i:03d}USDT" for i in range(550)]  # 1,100 streams
    r.set(control.SEEDED_KEY, "1")
    r.sadd(control.SYMBOLS_KEY, *many)
    ws = BinanceWsServer([], Script(generate_hz=0.5)).start()
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest.log")
    try:
        wait_for(lambda: sorted(len(s) for s in ws.subscriptions.values()) == [76, 1024], 60, "two full connections")
        assert ws.rate_closes == 0 and busiest_second(ws) < MAX_MESSAGES_PER_S
        # the first connection named 200 streams in its URL and asked for the rest in batches of 200
        first = [q for q in requests(ws, "SUBSCRIBE") if q.conn == 0]
        assert [len(q.doc["params"]) for q in first] == [200, 200, 200, 200, 24]
        both = set().union(*ws.subscriptions.values())
        assert both == {f"{s.lower()}@{k}" for s in many for k in ("trade", "bookTicker")}
        wait_for(lambda: len(trade_ids(r)) == 550, 60, "trades of every symbol")
        st = wait_for(lambda: (s := status(r, "ingest")).get("connections_open") == 2 and s, 10, "status")
        assert st["streams"] == 1100 and st["subscribe_errors"] == 0

        # removing the second connection's symbols closes it; the first one keeps running
        control.remove_symbol(r, many[-1])
        wait_for(lambda: sorted(len(s) for s in ws.subscriptions.values()) == [74, 1024], 30, "one symbol fewer")
        for sym in many[512:549]:
            r.srem(control.SYMBOLS_KEY, sym)
        r.incr(control.VERSION_KEY)
        wait_for(lambda: [len(s) for s in ws.subscriptions.values()] == [1024], 30, "the second connection closed")
        assert len(ws.connections) == 2  # no reconnect of the first
    finally:
        assert ingest.stop() == 0, ingest.log()
        ws.stop()


def test_requests_are_paced_and_answered_in_process():
    """The source alone: 20 changes fired at once stay under 5 messages a second, LIST_SUBSCRIPTIONS agrees."""
    ws = BinanceWsServer([], Script(generate_hz=5)).start()

    async def run() -> list[str] | None:
        src = BinanceSource(ws.url, ("BTCUSDT",))
        items = src.items()
        reader = asyncio.create_task(_drain(items))
        await asyncio.sleep(0.5)
        changes = [src.set_symbols(("BTCUSDT", *(f"Y{j:02d}USDT" for j in range(i + 1)))) for i in range(20)]
        await asyncio.gather(*changes)
        listed = await src.list_subscriptions()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await items.aclose()
        return listed

    try:
        listed = asyncio.run(run())
        assert listed == sorted({"btcusdt@trade", "btcusdt@bookTicker"}
                                | {f"y{j:02d}usdt@{k}" for j in range(20) for k in ("trade", "bookTicker")})
        assert ws.rate_closes == 0 and len(ws.connections) == 1
        assert busiest_second(ws) < MAX_MESSAGES_PER_S
        assert len(ws.requests) < 20  # merged: fewer messages than changes
    finally:
        ws.stop()


async def _drain(items) -> None:
    async for _ in items:
        pass


def test_the_local_server_answers_and_limits_like_binance():
    """The oracle of the tests above: replies, error objects, and a 6th message within a second disconnects."""
    ws = BinanceWsServer([], Script(generate_hz=1)).start()

    async def talk() -> tuple[list[dict], int | None]:
        answers = []
        async with websockets.connect(f"{ws.url}/stream?streams=btcusdt@trade") as c:
            for text in ('{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":1}',
                         '{"method":"LIST_SUBSCRIPTIONS","id":2}', '{"method":"SUBSCRIBE","params":["bad"],"id":3}',
                         '{"method":"NOPE","id":4}', "{not json"):
                await c.send(text)
                while "stream" in (doc := json.loads(await c.recv())):
                    pass
                answers.append(doc)
            await asyncio.sleep(1.1)
            code = None
            try:
                for i in range(6):
                    await c.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + i}))
                while True:
                    await c.recv()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
        return answers, code

    try:
        answers, code = asyncio.run(talk())
        assert answers[0] == {"result": None, "id": 1}
        assert answers[1] == {"result": ["btcusdt@trade", "ethusdt@trade"], "id": 2}
        assert answers[2] == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 3}
        assert answers[3]["error"]["code"] == 2 and answers[3]["id"] == 4
        assert answers[4]["error"]["code"] == 3 and answers[4]["id"] is None
        assert code == 1008 and ws.rate_closes == 1
    finally:
        ws.stop()


def test_the_synthetic_feed_follows_the_registry_too(tmp_path, redis_server):
    """Demo users without internet: a symbol added while the synthetic feed runs starts being generated."""
    r = redis_server.client()
    ingest = Proc(python_module("ingest"), service_env(
        redis_server.url, SOURCE="synthetic", SYMBOLS="btcusdt,ethusdt", SYNTHETIC_HISTORY_H="0",
        SYNTHETIC_RATE="20", DEPTH="false"), tmp_path / "ingest.log")
    try:
        wait_for(lambda: len(trade_ids(r).get("ETHUSDT", [])) > 5, 60, "ETH trades")
        control.add_symbol(r, "SOLUSDT")
        wait_for(lambda: len(trade_ids(r).get("SOLUSDT", [])) > 5, 30, "SOL trades")
        control.remove_symbol(r, "SOLUSDT")
        wait_for(lambda: "symbols from the registry: +none -SOLUSDT" in ingest.log(), 10, "the removal applied")
        before = len(trade_ids(r)["SOLUSDT"])
        n_btc = len(trade_ids(r)["BTCUSDT"])
        wait_for(lambda: len(trade_ids(r)["BTCUSDT"]) > n_btc + 10, 30, "more BTC trades")
        assert len(trade_ids(r)["SOLUSDT"]) == before
        assert status(r, "ingest")["dead_letters"] == 0
    finally:
        assert ingest.stop() == 0, ingest.log()
