"""Poison entries are quarantined, transient failures retried: the consumer loop with real Redis and DuckDB.

A poison entry (one the store can never hold) must not stop the group: it goes to stream:deadletter with its
reason, is acknowledged and counted, and every other entry of its batch is stored exactly once. A transient
failure (disk full, Redis down) must never dead-letter anything: the same batch is retried until it passes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from qs_common import codec
from qs_common.models import Trade
from tests.conftest import BTC_RECORDING, ETH_RECORDING, restart_redis, start_redis
from tests.integration.procs import wait_for
from tests.recordings import reference_candles, trades
from worker.candle_consumer import CandleHandler
from worker.consumer import GroupConsumer
from worker.store import CandleStore

pytestmark = pytest.mark.integration

STREAM = "stream:ticks"
DEAD = "stream:deadletter"
GOOD = trades(BTC_RECORDING)[:150] + trades(ETH_RECORDING)[:100]
T0 = GOOD[0]["T"]
RECV = T0 * 1_000_000
EIGHT = Decimal("1e-8")


def entry(t: dict[str, Any]) -> dict[str, str | int]:
    return codec.encode(Trade(t["s"], t["t"], t["p"], t["q"], t["T"], t["E"], RECV, t["m"]))


def trade(symbol: str, trade_id: int, p: str, q: str, ts: int) -> dict[str, Any]:
    return {"s": symbol, "t": trade_id, "p": p, "q": q, "T": ts, "E": ts, "m": False}


# Trades that ingest used to let through and that stopped candle building for good (issue 8, item 1).
POISON = [
    trade("BTCUSDT", 2**70, "61000.1", "0.5", T0),  # id beyond BIGINT: "found value of type Int128"
    trade("BTCUSDT", 1, "61000.1", "0.5", 10**25),  # time beyond BIGINT
    trade("BTCUSDT", 2, "100000000000000000000", "100000000000000000000", T0),  # p·q overflows DECIMAL(38,16)
    trade("ETHUSDT", 3, "0.00000000", "1", T0),  # zero price: would become the candle's low
    trade("ETHUSDT", 4, "2500.5", "1", -5),  # negative time: a candle in 1969
]


def publish(r: redis.Redis, rows: list[dict[str, str | int]]) -> list[bytes]:
    pipe = r.pipeline(transaction=False)
    for fields in rows:
        pipe.xadd(STREAM, fields)  # type: ignore[arg-type]
    return list(pipe.execute())


def stored_candles(store: CandleStore, symbol: str, interval: str = "1m") -> dict[int, dict[str, Any]]:
    df = store.candles(symbol, interval, None, None, 100_000)
    return {row["open_time"]: row for row in df.to_dicts()}


def assert_candles_equal_reference(store: CandleStore, good: list[dict[str, Any]]) -> None:
    assert_equal_reference(lambda symbol: stored_candles(store, symbol), good)


def assert_equal_reference(candles_of: Callable[[str], dict[int, dict[str, Any]]], good: list[dict[str, Any]]) -> None:
    """The 1m candles `candles_of(symbol)` gives (stored, or from the API) are the reference's of `good`."""
    for symbol in sorted({t["s"] for t in good}):
        want = reference_candles([t for t in good if t["s"] == symbol], 60_000)
        got = candles_of(symbol)
        assert set(got) == set(want), symbol
        for open_time, w in want.items():
            g = got[open_time]
            for name in ("open", "high", "low", "close", "volume", "taker_buy_volume"):
                assert Decimal(g[name]) == w[name], (symbol, open_time, name)
            assert Decimal(g["quote_volume"]) == w["quote_volume"].quantize(EIGHT, ROUND_HALF_UP)  # DuckDB round()
            assert g["trades"] == w["trades"], (symbol, open_time)


def dead_letters(r: redis.Redis) -> list[dict[str, str]]:
    entries: Any = r.xrange(DEAD)
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]


def candle_consumer(r: redis.Redis, store: CandleStore, **kw: Any) -> tuple[GroupConsumer, CandleHandler]:
    r.xgroup_create(STREAM, "candles", id="0", mkstream=True)
    handler = CandleHandler(store, r, 48 * 3_600_000)
    return GroupConsumer(r, STREAM, "candles", "c1", handler, **kw), handler


def test_impossible_trades_are_dead_lettered_at_once_and_every_other_trade_is_stored(r, tmp_path):
    rows: list[tuple[dict[str, Any], bool]] = [(entry(t), False) for t in GOOD]
    for i, bad in enumerate(POISON):
        rows.insert(20 + 40 * i, (entry(bad), True))  # scattered among the good ones
    weird = {"sym": b"\xff\xfeUSDT", "kind": "trade", "ts": T0, "ev": T0, "recv": RECV, "id": 7, "p": "1", "q": "1",
             "m": "0"}  # not UTF-8: from some other tool
    rows.insert(100, (weird, True))
    ids = publish(r, [fields for fields, _ in rows])
    poison_ids = {eid for eid, (_, bad) in zip(ids, rows, strict=True) if bad}
    store = CandleStore(tmp_path / "c.duckdb")
    consumer, handler = candle_consumer(r, store)
    consumer._read(">")  # deliver the batch, as a consumer that then crashed would have it
    consumer._own_pending()

    assert r.xpending(STREAM, "candles")["pending"] == 0
    assert consumer.stats.quarantined == len(poison_ids) and handler.bad_entries == len(poison_ids)
    assert consumer.stats.failed_batches == 0  # the checks caught them: no failing batch, no bisection
    dead = dead_letters(r)
    assert {d["entry_id"] for d in dead} == {i.decode() for i in poison_ids}
    assert all(d["source"] == "worker-candles" and d["stream"] == STREAM and d["reason"] for d in dead)
    reasons = {json.loads(d["raw"])["id"]: d["reason"] for d in dead}
    assert "trade id" in reasons[str(2**70)] and "trade time" in reasons["1"] and "10^22" in reasons["2"]
    assert "not > 0" in reasons["3"] and "trade time" in reasons["4"]
    assert json.loads(next(d["raw"] for d in dead if d["entry_id"] == ids[100].decode()))["sym"] == "\\xff\\xfeUSDT"
    assert_candles_equal_reference(store, GOOD)
    store.close()


def test_a_batch_that_keeps_failing_is_bisected_and_only_the_entry_failing_alone_is_quarantined(r, tmp_path):
    # Each trade fits the store, two together do not: their candle's quote volume overflows DECIMAL(38,16).
    # No check can see that from one entry; only bisection finds the one that fails alone.
    big = [trade("BIGUSDT", 1, "90000000000", "100000000000", T0), trade("BIGUSDT", 2, "90000000000",
                                                                         "100000000000", T0 + 1)]
    rows = [entry(t) for t in GOOD[:120]] + [entry(big[0])] + [entry(t) for t in GOOD[120:]] + [entry(big[1])]
    ids = publish(r, rows)
    store = CandleStore(tmp_path / "c.duckdb")
    consumer, _ = candle_consumer(r, store, retries=3)
    consumer._read(">")
    consumer._own_pending()

    assert r.xpending(STREAM, "candles")["pending"] == 0
    assert consumer.stats.failed_batches >= 3 and consumer.stats.quarantined == 1
    (dead,) = dead_letters(r)
    assert dead["entry_id"] == ids[-1].decode() and dead["source"] == "worker-candles"
    assert "overflow" in dead["reason"].lower(), dead["reason"]
    assert consumer.stats.last_quarantine == dead["reason"]
    assert_candles_equal_reference(store, GOOD)  # every good trade exactly once, after 3 tries and the halves
    (big_candle,) = stored_candles(store, "BIGUSDT").values()
    assert big_candle["trades"] == 1 and Decimal(big_candle["quote_volume"]) == Decimal(9) * 10**21
    forming = json.loads(r.get("candle:latest:BIGUSDT:1m"))  # published too, quote volume exact to 8 places
    assert forming["trades"] == 1 and forming["quote_volume"] == "9000000000000000000000.00000000"
    store.close()


def _full_disk_handler(target: list[Path], calls: list[int]) -> Any:
    def handler(entries: list[Any]) -> None:
        calls.append(len(entries))
        with target[0].open("ab") as fh:  # /dev/full: a real "No space left on device"
            fh.write(b"x" * len(entries))
            fh.flush()

    return handler


def test_a_full_disk_is_retried_in_place_never_bisected_nor_dead_lettered(r, tmp_path):
    ids = publish(r, [entry(t) for t in GOOD[:40]])
    r.xgroup_create(STREAM, "g", id="0")
    target, calls = [Path("/dev/full")], []
    consumer = GroupConsumer(r, STREAM, "g", "c1", _full_disk_handler(target, calls), retries=2)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    try:
        wait_for(lambda: consumer.stats.failed_batches >= 4, 30, "several failed attempts")
        assert consumer.stats.state == "retrying" and "No space left" in consumer.stats.last_error
        assert r.xlen(DEAD) == 0 and r.xpending(STREAM, "g")["pending"] == len(ids)
        target[0] = tmp_path / "ok.bin"  # the disk has room again
        wait_for(lambda: r.xpending(STREAM, "g")["pending"] == 0, 30, "the batch to pass")
    finally:
        stop.set()
        t.join(10)
    assert set(calls) == {len(ids)}  # always the whole batch: never bisected
    assert r.xlen(DEAD) == 0 and consumer.stats.quarantined == 0 and consumer.stats.entries == len(ids)
    assert (tmp_path / "ok.bin").stat().st_size == len(ids)


@pytest.mark.parametrize("failure", ["transient", "poison"])
def test_stop_interrupts_retry_waits_and_leaves_the_batch_pending(r, tmp_path, failure):
    ids = publish(r, [entry(t) for t in GOOD[:10]])
    r.xgroup_create(STREAM, "g", id="0")
    calls: list[int] = []

    def poison(entries: list[Any]) -> None:
        calls.append(len(entries))
        raise ValueError("bad data")

    handler = _full_disk_handler([Path("/dev/full")], calls) if failure == "transient" else poison
    # Many retries: the poison batch is still in its retry waits when the stop comes.
    consumer = GroupConsumer(r, STREAM, "g", "c1", handler, retries=100)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    wait_for(lambda: consumer.stats.failed_batches >= 3, 30, "the batch to fail a few times")
    stop.set()
    t.join(10)  # the old loop slept through stop and retried forever
    assert not t.is_alive()
    assert r.xpending(STREAM, "g")["pending"] == len(ids) and r.xlen(DEAD) == 0  # re-read on the next start


def test_redis_down_mid_batch_is_retried_and_every_trade_is_stored_once(tmp_path):
    server = start_redis(tmp_path / "redis", appendonly=True)
    r = server.client()
    store = CandleStore(tmp_path / "c.duckdb")
    try:
        publish(r, [entry(t) for t in GOOD])
        r.xgroup_create(STREAM, "candles", id="0")
        candles = CandleHandler(store, r, 48 * 3_600_000)
        down = threading.Event()

        def handler(entries: list[Any]) -> Any:
            if not down.is_set():  # Redis goes away mid-batch: after the read, before the candles are published
                down.set()
                server.proc.terminate()  # SIGTERM: Redis writes its AOF and exits
                server.proc.wait(10)
            return candles(entries)

        consumer = GroupConsumer(r, STREAM, "candles", "c1", handler)
        stop = threading.Event()
        t = threading.Thread(target=consumer.run, args=(stop,))
        t.start()
        wait_for(lambda: consumer.stats.state == "retrying", 30, "the consumer to retry")
        assert "connect" in consumer.stats.last_error.lower(), consumer.stats.last_error
        time.sleep(0.5)  # a few more failed attempts while Redis is down
        server = restart_redis(server)
        wait_for(lambda: r.xpending(STREAM, "candles")["pending"] == 0, 30, "the batch to pass")
        stop.set()
        t.join(10)
        assert r.xlen(DEAD) == 0 and consumer.stats.quarantined == 0
        # DuckDB committed the batch before Redis failed; the retry found every trade stored already
        assert_candles_equal_reference(store, GOOD)
    finally:
        store.close()
        server.proc.terminate()
        server.proc.wait(10)
