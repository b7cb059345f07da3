"""The product's Redis client against a real Redis Cluster (the suite's three masters, emptied for each test)."""

from __future__ import annotations

import pytest

from qs_common.partition import tag
from qs_common.redis_client import connect, get_many, is_cluster, transactional
from tests.cluster import RedisClusterServers

pytestmark = pytest.mark.integration


def test_client_reaches_every_node_and_groups_work_per_tagged_stream(cluster: RedisClusterServers) -> None:
    r = connect(cluster.url, cluster=True, socket_timeout=5)
    assert is_cluster(r) and not transactional(r)
    symbols = [f"S{i}USDT" for i in range(30)]
    for s in symbols:
        stream = f"stream:ticks:{tag(s)}"
        r.xgroup_create(stream, "candles", id="0", mkstream=True)
        r.xadd(stream, {"s": s})
    # Thirty tagged streams land on all three masters: the cluster really spreads them.
    assert len({cluster.master_of(f"stream:ticks:{tag(s)}").port for s in symbols}) == 3
    for s in symbols:
        stream = f"stream:ticks:{tag(s)}"
        got = r.xreadgroup("candles", "c", {stream: ">"}, count=10)
        assert got[0][1][0][1] == {b"s": s.encode()}
        # A MULTI within one tag is allowed in a cluster.
        pipe = r.pipeline(transaction=True)
        pipe.xack(stream, "candles", got[0][1][0][0])
        pipe.set(f"candle:latest:{tag(s)}:1m", "x")
        assert pipe.execute()[0] == 1


def test_single_node_mode_is_unchanged(redis_server: object) -> None:
    r = connect(redis_server.url)  # type: ignore[attr-defined]
    assert not is_cluster(r) and transactional(r) and r.ping()


def test_get_many_reads_keys_of_every_node_in_order(cluster: RedisClusterServers) -> None:
    r = connect(cluster.url, cluster=True, socket_timeout=5)
    names = [f"book:latest:S{i}USDT" for i in range(20)]
    assert len({cluster.master_of(n).port for n in names}) > 1  # a plain MGET of these is refused on a cluster
    for i, n in enumerate(names[::2]):
        r.set(n, str(i))
    assert get_many(r, names) == [str(i // 2).encode() if i % 2 == 0 else None for i in range(20)]
    assert get_many(r, []) == []
