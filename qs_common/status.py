"""Status records: each process writes one small JSON record to Redis every second.

Health checks and the dashboard read them; the short TTL makes a dead process's record vanish.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

from qs_common.keys import STATUS_PATTERN, status_key

STATUS_TTL_S = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RateMeter:
    """Events per second over the last reporting interval."""

    def __init__(self) -> None:
        self._last_count = 0
        self._last_t = time.monotonic()

    def rate(self, count: int) -> float:
        t = time.monotonic()
        dt = max(t - self._last_t, 1e-9)
        r = (count - self._last_count) / dt
        self._last_count, self._last_t = count, t
        return round(r, 1)


def encode_status(process: str, record: Mapping[str, Any]) -> tuple[str, str]:
    body = {"process": process, "updated_ms": now_ms(), **record}
    return status_key(process), json.dumps(body, default=str)


def write_status(r: redis.Redis, process: str, record: Mapping[str, Any]) -> None:
    key, body = encode_status(process, record)
    r.set(key, body, ex=STATUS_TTL_S)


async def awrite_status(r: aioredis.Redis, process: str, record: Mapping[str, Any]) -> None:
    key, body = encode_status(process, record)
    await r.set(key, body, ex=STATUS_TTL_S)


def read_statuses(r: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every live status record by process name; one that is not a JSON object is left out (a reader such as
    the System page must not fail on one bad record)."""
    out: dict[str, dict[str, Any]] = {}
    for key in r.scan_iter(match=STATUS_PATTERN, count=100):
        raw = r.get(key)
        try:
            record = json.loads(raw) if raw is not None else None
        except ValueError:
            continue
        if isinstance(record, dict):
            name = key.decode() if isinstance(key, bytes) else key
            out[name.removeprefix("status:")] = record
    return out
