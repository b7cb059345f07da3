"""The consumer-group creation rule, for the sync (worker) and async (ingest) Redis clients.

A group is created at id 0 with the stream (MKSTREAM), so entries published before any consumer of the group
started are kept for it; a group that exists already (BUSYGROUP) is left as it is.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

GROUP_START_ID = "0"


def _exists(exc: ResponseError) -> bool:
    return "BUSYGROUP" in str(exc)


def ensure_group(r: redis.Redis, stream: str, group: str) -> None:
    try:
        r.xgroup_create(stream, group, id=GROUP_START_ID, mkstream=True)
    except ResponseError as exc:
        if not _exists(exc):
            raise


async def aensure_group(r: aioredis.Redis, stream: str, group: str) -> None:
    try:
        await r.xgroup_create(stream, group, id=GROUP_START_ID, mkstream=True)
    except ResponseError as exc:
        if not _exists(exc):
            raise
