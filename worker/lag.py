"""Consumer-group lag over every tick stream (issue 14): `GET /lag`, the signal KEDA scales the analytics shards on.

KEDA's redis-streams scalers read one stream and one group; in partitioned mode the ticks are in one stream per
symbol (`stream:ticks:{SYM}`) and the analytics groups are named after the shard count (`analytics-{k}of{M}`), which
changes with every resize. So the workers sum the lag themselves, and KEDA's `metrics-api` trigger reads the sum
from any candle shard's API (k8s/components/keda).

    {"analytics_lag": N, "candles_lag": N, "analytics_pending": N, "candles_pending": N, "streams": K}

- lag: entries of the stream not yet delivered to the group (XINFO GROUPS `lag`, Redis 7). Redis reports it as
  unknown (nil) when it cannot tell from its counters (entries deleted inside the group's unread range); then the
  entries after the group's last-delivered-id are counted with one XRANGE of at most UNKNOWN_LAG_CAP entries, so
  an unknown lag counts as at most the cap (a lower bound), never as a full read of a large stream.
- pending: delivered and not yet acknowledged (a stuck shard, or batches in hand).
- analytics groups: `analytics` (single mode, SHARD=0/1) and `analytics-*of*` (every shard count: during a resize the
  old count's group is still behind until it is deleted, and its lag is real work nobody does). candles: `candles`.
- streams: TICKS_STREAM in single mode; in partitioned mode the active symbols' streams (the control registry).
  K counts the streams that exist.

One XINFO GROUPS per stream (each a single key, so it works on a Redis Cluster: RedisCluster routes it to the
stream's node); no multi-key command.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import redis

from qs_common import control, keys
from qs_common.settings import Settings

UNKNOWN_LAG_CAP = 10_000


def tick_streams(r: redis.Redis, settings: Settings) -> list[str]:
    """The tick streams the workers read: the one stream, or one per active symbol."""
    if not settings.partitioned:
        return [settings.ticks_stream]
    return [keys.tick_stream(settings.ticks_stream, s) for s in sorted(control.active_symbols(r))]


def role_of(group: str) -> str | None:
    """`analytics`, `candles`, or None for a group the autoscaler does not care about."""
    if group == keys.ANALYTICS_GROUP or fnmatch.fnmatchcase(group, keys.ANALYTICS_GROUP_PATTERN):
        return "analytics"
    if group == keys.CANDLES_GROUP:
        return "candles"
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_lag(r: redis.Redis, stream: str, info: dict[str, Any]) -> int:
    """The group's lag; when Redis cannot tell, the entries after its last-delivered-id (at most the cap)."""
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    after = "(" + _text(info["last-delivered-id"])  # exclusive start (Redis >= 6.2)
    return len(r.xrange(stream, min=after, max="+", count=UNKNOWN_LAG_CAP) or [])


def stream_groups(r: redis.Redis, stream: str) -> list[dict[str, Any]] | None:
    """XINFO GROUPS of one stream; None when the stream does not exist (yet)."""
    try:
        return r.xinfo_groups(stream)  # type: ignore[return-value]
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise


def consumer_lag(r: redis.Redis, settings: Settings) -> dict[str, int]:
    """The sums over every tick stream (see the module's docstring)."""
    out = {"analytics_lag": 0, "candles_lag": 0, "analytics_pending": 0, "candles_pending": 0, "streams": 0}
    for stream in tick_streams(r, settings):
        groups = stream_groups(r, stream)
        if groups is None:
            continue
        out["streams"] += 1
        for info in groups:
            role = role_of(_text(info["name"]))
            if role is not None:
                out[f"{role}_lag"] += group_lag(r, stream, info)
                out[f"{role}_pending"] += int(info.get("pending") or 0)
    return out
