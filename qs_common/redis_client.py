"""One way every process connects to Redis: a single node (the default) or a Redis Cluster (`REDIS_CLUSTER=true`,
`REDIS_URL` naming any seed node; the client discovers the others and follows MOVED/ASK redirections).

In cluster mode a MULTI may only touch keys of one slot, and a command with several keys (XREADGROUP over several
streams) needs them in one slot too; callers that must work in both modes use `transactional()` for the pipeline
kind and keep multi-key commands within one hash tag (`qs_common.partition.tag`).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster


def connect(url: str, cluster: bool = False, **kwargs: Any) -> redis.Redis:
    """A client for `url`. The cluster client is typed as `redis.Redis`: it offers the same commands, which is all
    the callers use (RedisCluster is not a subclass, hence the cast)."""
    if cluster:
        kwargs.pop("health_check_interval", None)  # per-node connections of the cluster client manage their own
        client: Any = RedisCluster.from_url(url, **kwargs)
        return client  # type: ignore[no-any-return]
    return redis.Redis.from_url(url, **kwargs)


def aconnect(url: str, cluster: bool = False, **kwargs: Any) -> aioredis.Redis:
    """The asyncio twin of `connect` (ingest publishes with redis.asyncio)."""
    if cluster:
        kwargs.pop("health_check_interval", None)
        client: Any = AsyncRedisCluster.from_url(url, **kwargs)
        return client  # type: ignore[no-any-return]
    return aioredis.Redis.from_url(url, **kwargs)


def is_cluster(client: object) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


def transactional(client: object) -> bool:
    """Whether a pipeline of this client may be a MULTI over keys of different slots (single node only)."""
    return not is_cluster(client)


def get_many(client: redis.Redis, names: list[str]) -> list[Any]:
    """MGET of keys that may live in different slots: one MGET on a single node; on a Redis Cluster one per node
    (`mget_nonatomic`), since a cross-slot MGET is refused there. Values in the order of `names`."""
    if not names:
        return []
    if is_cluster(client):
        return list(client.mget_nonatomic(names))  # type: ignore[attr-defined]
    return list(client.mget(names))  # type: ignore[arg-type]
