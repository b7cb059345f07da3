"""stream:depth at the publisher: the book group exists before anything is published, depth entries are never
cut while the book group has not read them, and once read they are trimmed to the depth bound."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from ingest.publisher import Publisher
from qs_common import codec, keys
from qs_common.depth import DepthDiff


def diff(i: int) -> DepthDiff:
    return DepthDiff("BTCUSDT", 2 * i + 1, 2 * i + 2, None, (("61837.63000000", f"{i}.00000000"),), (), 1_000 + i, i)


def test_depth_is_kept_until_read_then_trimmed_to_its_bound(redis_server):
    r = redis_server.client()

    async def run() -> None:
        ar = aioredis.from_url(redis_server.url)
        pub = Publisher(ar, "stream:ticks", maxlen=1_000, source="test", depth_stream=keys.DEPTH_STREAM,
                        depth_maxlen=1_000)
        await pub.setup()
        for i in range(3_000):
            pub.add_depth(diff(i), i)
        await pub.flush()
        await pub.trim()
        assert pub.depth_published == 3_000
        assert await ar.xlen(keys.DEPTH_STREAM) == 3_000  # nothing read by the book group: nothing cut
        # the book group reads and acknowledges the first 2,500
        reply = await ar.xreadgroup(keys.BOOK_GROUP, "c", {keys.DEPTH_STREAM: ">"}, count=2_500)
        ids = [eid for eid, _ in reply[0][1]]
        await ar.xack(keys.DEPTH_STREAM, keys.BOOK_GROUP, *ids)
        await pub.trim()
        await ar.aclose()

    asyncio.run(run())
    left = r.xrange(keys.DEPTH_STREAM)
    assert len(left) == 1_000  # the bound, all of it unread or newest
    assert [codec.decode_depth(f) for _, f in left] == [diff(i) for i in range(2_000, 3_000)]
    assert [g["name"] for g in r.xinfo_groups(keys.DEPTH_STREAM)] == [keys.BOOK_GROUP.encode()]
