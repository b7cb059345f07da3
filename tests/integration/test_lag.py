"""GET /lag (worker/lag.py): consumer-group lag summed over every tick stream, on real Redis (one node and a real
Redis Cluster) with groups and a backlog; the expected figures are counted independently from what the test wrote
(entries written, read and acknowledged), not from XINFO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from qs_common import control, keys
from qs_common.settings import load_settings
from tests.cluster import start_cluster
from tests.integration.procs import WorkerProc, wait_for
from worker.lag import UNKNOWN_LAG_CAP, consumer_lag

pytestmark = pytest.mark.integration

BASE = "stream:ticks"


def fill(r: redis.Redis, stream: str, n: int) -> list[bytes]:
    return [r.xadd(stream, {"n": str(i)}) for i in range(n)]  # type: ignore[misc]


def group(r: redis.Redis, stream: str, name: str, read: int = 0, ack: int = 0) -> None:
    """A group at the stream's start that has read `read` entries and acknowledged the first `ack` of them."""
    r.xgroup_create(stream, name, id="0")
    if read:
        got: Any = r.xreadgroup(name, "c1", {stream: ">"}, count=read)
        ids: list[bytes] = [i for i, _ in got[0][1]]
        assert len(ids) == read
        if ack:
            r.xack(stream, name, *ids[:ack])


def partitioned_backlog(r: redis.Redis) -> dict[str, int]:
    """Two active symbols' streams with analytics groups of two shard counts (a resize in flight), the candles
    group, an ignored group, an inactive symbol's stream (not counted) and an active symbol without a stream."""
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        control.add_symbol(r, sym)
    btc, eth = keys.tick_stream(BASE, "BTCUSDT"), keys.tick_stream(BASE, "ETHUSDT")
    fill(r, btc, 50)
    fill(r, eth, 40)
    group(r, btc, "analytics-0of2", read=10, ack=4)  # lag 40, pending 6
    group(r, btc, "analytics-1of3")  # lag 50 (the old count, still behind)
    group(r, eth, "analytics-1of2", read=40, ack=40)  # lag 0
    group(r, btc, keys.CANDLES_GROUP, read=50, ack=45)  # lag 0, pending 5
    group(r, eth, keys.CANDLES_GROUP, read=15, ack=15)  # lag 25
    group(r, eth, keys.GAPS_GROUP)  # not a tick consumer the autoscaler steers
    xrp = keys.tick_stream(BASE, "XRPUSDT")  # not active: not counted
    fill(r, xrp, 30)
    group(r, xrp, "analytics-0of2")
    return {"analytics_lag": 40 + 50 + 0, "candles_lag": 0 + 25, "analytics_pending": 6, "candles_pending": 5,
            "streams": 2}


def test_single_stream(r: redis.Redis) -> None:
    fill(r, BASE, 100)
    group(r, BASE, keys.CANDLES_GROUP, read=30, ack=20)
    group(r, BASE, keys.ANALYTICS_GROUP, read=0)
    group(r, BASE, keys.GAPS_GROUP, read=5)
    fill(r, keys.tick_stream(BASE, "BTCUSDT"), 7)  # partitioned streams are not this mode's
    got = consumer_lag(r, load_settings(redis_url="redis://unused:1/0"))
    assert got == {"analytics_lag": 100, "candles_lag": 70, "analytics_pending": 0, "candles_pending": 10,
                   "streams": 1}


def test_no_stream_yet(r: redis.Redis) -> None:
    assert consumer_lag(r, load_settings())["streams"] == 0


def test_partitioned_on_one_node(r: redis.Redis) -> None:
    expected = partitioned_backlog(r)
    assert consumer_lag(r, load_settings(tick_partitioning="symbol")) == expected


def test_unknown_lag_counts_the_entries_after_the_last_delivered(r: redis.Redis) -> None:
    """An entry deleted inside the unread range makes Redis's lag nil; the fallback counts the undelivered entries
    (capped)."""
    ids = fill(r, BASE, 60)
    group(r, BASE, keys.ANALYTICS_GROUP, read=10, ack=10)
    r.xdel(BASE, ids[30])
    info = {i["name"]: i for i in r.xinfo_groups(BASE)}  # type: ignore[union-attr]
    assert info[keys.ANALYTICS_GROUP.encode()]["lag"] is None  # the path under test
    assert consumer_lag(r, load_settings())["analytics_lag"] == 60 - 10 - 1
    assert UNKNOWN_LAG_CAP >= 1_000


def test_redis_cluster(tmp_path: Path) -> None:
    """The same backlog on a 3-master Redis Cluster: one XINFO per stream, routed to the stream's node."""
    servers = start_cluster(tmp_path / "cluster", appendonly=False)
    try:
        rc = servers.client()
        expected = partitioned_backlog(rc)  # type: ignore[arg-type]
        assert consumer_lag(rc, load_settings(redis_cluster=True)) == expected  # type: ignore[arg-type]
    finally:
        servers.stop()


def test_worker_api_answers_lag(redis_server, r: redis.Redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real candle worker's GET /lag: the analytics backlog no process reads is reported exactly."""
    control.add_symbol(r, "BTCUSDT")
    btc = keys.tick_stream(BASE, "BTCUSDT")
    fill(r, btc, 25)
    group(r, btc, "analytics-3of4", read=5)  # nobody of that count runs: lag 20, pending 5
    w = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log", TICK_PARTITIONING="symbol",
                   SYMBOLS="btcusdt", PAIRS="")
    try:
        w.wait_healthy()
        resp = httpx.get(f"{w.api}/lag", timeout=10)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["analytics_lag"] >= 20 and body["analytics_pending"] >= 5 and body["streams"] == 1, body
        assert set(body) == {"analytics_lag", "candles_lag", "analytics_pending", "candles_pending", "streams"}
        wait_for(lambda: httpx.get(f"{w.api}/lag", timeout=10).json() == consumer_lag(
            r, load_settings(tick_partitioning="symbol")), 30, "/lag equals the sums read directly")
    finally:
        w.stop()
