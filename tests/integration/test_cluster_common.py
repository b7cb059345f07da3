"""Common code on a real Redis Cluster (issue 14): the live registry (its keys share one hash tag, so its
transactions work there), status records, consumer groups and the start-up wait, through qs_common.redis_client."""

from __future__ import annotations

import pytest

from qs_common import control, groups, keys
from qs_common.redis_client import connect
from qs_common.redis_wait import StartupError, wait_for_redis
from qs_common.settings import load_settings
from qs_common.status import read_statuses, write_status
from tests.cluster import RedisClusterServers
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration


def test_registry_status_and_groups_on_a_cluster(cluster: RedisClusterServers, redis_server: RedisServer) -> None:
    wait_for_redis(cluster.url, 5, cluster=True)
    r = connect(cluster.url, cluster=True, socket_timeout=5)
    settings = load_settings(symbols=("BTCUSDT", "ETHUSDT"))
    # the registry's keys share one hash tag, so WATCH/MULTI works on a cluster as on one node
    assert len({r.keyslot(k) for k in (control.SYMBOLS_KEY, control.PAIRS_KEY,  # type: ignore[attr-defined]
                                       control.VERSION_KEY, control.SEEDED_KEY)}) == 1
    assert control.seed(r, settings) is True and control.seed(r, settings) is False
    assert control.active_symbols(r) == ("BTCUSDT", "ETHUSDT")
    assert list(control.active_pairs(r)) == ["ETHUSDT/BTCUSDT"]
    assert control.add_symbol(r, "SOLUSDT") is True and control.add_symbol(r, "SOLUSDT") is False
    with pytest.raises(control.InUse):
        control.remove_symbol(r, "ETHUSDT")
    assert control.remove_symbol(r, "SOLUSDT") is True
    assert control.put_pair(r, control.default_pair(settings, "SOLUSDT", "BTCUSDT")) is True
    assert control.update_pair(r, "SOLUSDT/BTCUSDT", {"window": 77}).window == 77
    with pytest.raises(control.UnknownPair):
        control.update_pair(r, "BNBUSDT/BTCUSDT", {"window": 5})
    assert control.remove_pair(r, "SOLUSDT/BTCUSDT") is True
    assert control.version(r) == 7  # one increment per write: seed, add twice, remove, put, update, remove

    # status records live on every node; read_statuses finds them all
    for name in ("ingest", "worker-candles-0of2", "worker-candles-1of2", "worker-analytics-0of2"):
        write_status(r, name, {"ok": True})
    names = ("ingest", "worker-candles-0of2", "worker-candles-1of2", "worker-analytics-0of2")
    assert len({cluster.master_of(keys.status_key(n)).port for n in names}) > 1  # a SCAN of one node is not enough
    assert set(read_statuses(r)) == {"ingest", "worker-candles-0of2", "worker-candles-1of2",
                                     "worker-analytics-0of2"}
    stream = keys.tick_stream("stream:ticks", "BTCUSDT")
    groups.ensure_group(r, stream, keys.CANDLES_GROUP)
    groups.ensure_group(r, stream, keys.CANDLES_GROUP)  # exists: left as it is
    assert [g["name"] for g in r.xinfo_groups(stream)] == [b"candles"]
    # REDIS_CLUSTER=true against a plain redis-server: one line naming the setting, at once
    with pytest.raises(StartupError, match="REDIS_CLUSTER"):
        wait_for_redis(redis_server.url, 30, cluster=True)
