"""The consumer of many streams (worker/multi_consumer.py) and the candle shards' registry (worker/shards.py) on a
real redis-server: merged ingest order across streams whose ids collide, acknowledgements per stream, the hold for a
stream briefly behind, pending re-reads per stream, and owner lookup with heartbeats."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from qs_common.partition import ShardSpec, shard_of
from tests.integration.procs import wait_for
from worker.consumer import TaggedId
from worker.multi_consumer import MultiStreamConsumer, order_key
from worker.shards import STALE_MS, OwnerUnavailable, ShardRegistry, owned_symbols

pytestmark = pytest.mark.integration

A, B = "s:{A}", "s:{B}"


def tick(recv: int, sym: str) -> dict[str, Any]:
    return {"v": 1, "sym": sym, "kind": "trade", "recv": recv}


class Recorder:
    def __init__(self, stop_after: int) -> None:
        self.seen: list[tuple[str, bytes, int]] = []
        self.stop = threading.Event()
        self.stop_after = stop_after

    def __call__(self, entries: list[Any]) -> list[Any]:
        for eid, f in entries:
            self.seen.append((eid.stream, bytes(eid), int(f[b"recv"])))
        if len(self.seen) >= self.stop_after:
            self.stop.set()
        return []

    def status(self) -> dict[str, Any]:
        return {}


def run_until_done(c: MultiStreamConsumer, rec: Recorder, timeout: float = 20) -> None:
    t = threading.Thread(target=c.run, args=(rec.stop,), daemon=True)
    t.start()
    assert rec.stop.wait(timeout), f"only {len(rec.seen)} entries handled"
    t.join(10)


def test_streams_are_merged_in_receive_order_and_acknowledged_each_on_its_own(r):
    # the same ids in both streams (explicit ids), receive times interleaved
    for i in range(1, 201):
        r.xadd(A, tick(2 * i, "A"), id=f"1-{i}")
        r.xadd(B, tick(2 * i + 1, "B"), id=f"1-{i}")
    rec = Recorder(400)
    c = MultiStreamConsumer(r, lambda: [A, B], "g", "c1", rec, ordered=True, hold_ms=50, batch=7)
    run_until_done(c, rec)
    assert [recv for _, _, recv in rec.seen] == list(range(2, 402))
    assert TaggedId(b"1-1", A) != TaggedId(b"1-1", B) and len({TaggedId(b"1-1", A), TaggedId(b"1-1", B)}) == 2
    for s in (A, B):
        g = r.xinfo_groups(s)[0]
        assert g["pending"] == 0 and g["last-delivered-id"] == b"1-200"
    assert c.fed == {A: "1-200", B: "1-200"}


def test_a_stream_briefly_behind_holds_the_others_back_within_the_hold(r):
    r.xadd(A, tick(10, "A"))
    r.xadd(A, tick(30, "A"))
    r.xadd(B, tick(1, "B"))  # B has given an entry: it is not quiet yet
    rec = Recorder(5)
    c = MultiStreamConsumer(r, lambda: [A, B], "g", "c1", rec, ordered=True, hold_ms=3_000)
    t = threading.Thread(target=c.run, args=(rec.stop,), daemon=True)
    t.start()
    wait_for(lambda: rec.seen, 10, "the first entry")
    time.sleep(0.3)  # B's newest (1) holds A's 10 and 30 back (read well within the hold)
    assert [x[2] for x in rec.seen] == [1]
    r.xadd(B, tick(20, "B"))  # arrives late but within the hold: merged in its place
    r.xadd(B, tick(40, "B"))
    assert rec.stop.wait(10)
    t.join(10)
    assert [x[2] for x in rec.seen] == [1, 10, 20, 30, 40]


def test_pending_entries_are_re_read_per_stream_and_a_new_stream_joins(r):
    r.xadd(A, tick(1, "A"))
    r.xgroup_create(A, "g", id="0")
    r.xreadgroup("g", "c1", {A: ">"})  # delivered, never acknowledged: a crash
    streams = [A]
    rec = Recorder(2)
    c = MultiStreamConsumer(r, lambda: streams, "g", "c1", rec, ordered=True, hold_ms=50, batch=10)
    t = threading.Thread(target=c.run, args=(rec.stop,), daemon=True)
    t.start()
    wait_for(lambda: rec.seen, 10, "the pending entry")
    assert [x[2] for x in rec.seen] == [1]
    assert c.bound(B) == "0-0"  # B joins (group at 0 on a new stream) before it has entries
    r.xadd(B, tick(2, "B"))
    streams.append(B)
    assert rec.stop.wait(10)
    t.join(10)
    assert [(x[0], x[2]) for x in rec.seen] == [(A, 1), (B, 2)]
    assert all(r.xinfo_groups(s)[0]["pending"] == 0 for s in (A, B))


def test_order_key_reads_dict_and_flat_fields():
    assert order_key(A, b"5-1", {b"recv": b"9"}) == order_key(A, b"5-1", [b"v", b"1", b"recv", b"9"]) == (9, A, 5, 1)
    assert order_key(A, b"5-1", {b"x": b"1"})[0] == -1


def test_registry_finds_owners_by_heartbeat(r):
    spec0, spec1 = ShardSpec(0, 2), ShardSpec(1, 2)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    mine = owned_symbols(spec0, symbols)
    assert mine == tuple(sorted(s for s in symbols if shard_of(s, 2) == 0)) and 0 < len(mine) < 4
    other = next(s for s in symbols if shard_of(s, 2) == 1)
    reg0 = ShardRegistry(r, spec0, "http://127.0.0.1:1/")
    reg1 = ShardRegistry(r, spec1, "http://127.0.0.1:2")
    reg0.beat(mine)
    with pytest.raises(OwnerUnavailable, match="candle shard 1/2"):
        reg0.owner(other)
    reg1.beat(owned_symbols(spec1, symbols))
    assert reg0.owner(other).address == "http://127.0.0.1:2" and not reg0.owns(other)
    assert [e.shard for e in reg1.others()] == ["0/2"]
    stale = json.loads(r.hget("shards:candles", "1/2"))
    stale["heartbeat_ms"] -= STALE_MS + 1
    r.hset("shards:candles", "1/2", json.dumps(stale))
    with pytest.raises(OwnerUnavailable):
        reg0.owner(other)
    r.hset("shards:candles", "1/2", "{not json")
    with pytest.raises(OwnerUnavailable):
        reg0.owner(other)
    reg0.leave()
    assert not r.hexists("shards:candles", "0/2")


def test_groups_of_another_shard_count_are_deleted_once_nobody_reads_them(r):
    from worker.analytics_shard import StaleGroups

    s = "stream:ticks:{BTCUSDT}"
    r.xadd(s, tick(1, "BTCUSDT"))
    for g in ("candles", "analytics-0of3", "analytics-1of3", "analytics-1of2"):
        r.xgroup_create(s, g, id="0")
    r.xreadgroup("analytics-0of3", "old-shard", {s: ">"})  # a consumer that then went away
    r.xreadgroup("analytics-1of2", "peer", {s: ">"})
    sweeper = StaleGroups(ShardSpec(1, 2), idle_ms=300)
    sweeper.sweep(r, s)  # nobody idle long enough yet; the group without consumers is only noted
    assert {g["name"].decode() for g in r.xinfo_groups(s)} == {"candles", "analytics-0of3", "analytics-1of3",
                                                                "analytics-1of2"}
    time.sleep(0.5)
    r.xreadgroup("analytics-1of2", "peer", {s: ">"})  # this shard count's groups are never touched
    sweeper.sweep(r, s)
    assert {g["name"].decode() for g in r.xinfo_groups(s)} == {"candles", "analytics-1of2"}
