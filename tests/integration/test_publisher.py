"""The tick stream stays bounded, but trimming never deletes what a consumer group has not acknowledged."""

from __future__ import annotations

import asyncio
import gzip
import logging

import pytest
import redis.asyncio as aioredis

from ingest.publisher import Publisher
from qs_common.models import Trade
from tests.conftest import python_module, service_env
from tests.integration.procs import status

pytestmark = pytest.mark.integration

STREAM = "stream:ticks"


def trade(i: int) -> Trade:
    return Trade("BTCUSDT", i, "61000.00000000", "0.00100000", 1_700_000_000_000 + i, 1_700_000_000_000 + i, i, False)


async def publish(pub: Publisher, first: int, n: int) -> None:
    for i in range(first, first + n):
        pub.add(trade(i))
    await pub.flush()


def run(coro):
    return asyncio.run(coro)


def test_trim_respects_every_groups_unacknowledged_entries(redis_server, r, caplog):
    async def scenario() -> None:
        ar = aioredis.from_url(redis_server.url)
        pub = Publisher(ar, STREAM, maxlen=1_000, source="test")
        await pub.setup()  # groups 'candles' and 'analytics' at id 0
        await publish(pub, 0, 5_000)
        # nobody has read anything: nothing may go, however far past the bound
        with caplog.at_level(logging.WARNING):
            await pub.trim()
        assert await ar.xlen(STREAM) == 5_000
        assert pub.backlog_over_bound and "BACKLOG OVER BOUND" in caplog.text

        # 'candles' reads and acks 4,000; 'analytics' reads 3,000 and acks only the first 2,500
        got = await ar.xreadgroup("candles", "c", {STREAM: ">"}, count=4_000)
        await ar.xack(STREAM, "candles", *[eid for eid, _ in got[0][1]])
        got = await ar.xreadgroup("analytics", "a", {STREAM: ">"}, count=3_000)
        ids = [eid for eid, _ in got[0][1]]
        await ar.xack(STREAM, "analytics", *ids[:2_500])
        await pub.trim()
        first = (await ar.xrange(STREAM, count=1))[0][0]
        assert first == ids[2_500], "trim must stop at analytics' oldest pending entry"
        assert await ar.xlen(STREAM) == 2_500
        assert pub.backlog_over_bound

        # once everyone has acknowledged, the stream is cut to the bound and the alarm clears
        await ar.xack(STREAM, "analytics", *ids[2_500:])
        rest = await ar.xreadgroup("analytics", "a", {STREAM: ">"})
        await ar.xack(STREAM, "analytics", *[eid for eid, _ in rest[0][1]])
        rest = await ar.xreadgroup("candles", "c", {STREAM: ">"})
        await ar.xack(STREAM, "candles", *[eid for eid, _ in rest[0][1]])
        await pub.trim()
        assert await ar.xlen(STREAM) == 1_000
        assert not pub.backlog_over_bound
        await ar.aclose()

    run(scenario())
    ids_left = [int(f[b"id"]) for _, f in r.xrange(STREAM)]
    assert ids_left == list(range(4_000, 5_000))


def test_a_group_created_later_still_protects_only_what_it_has_not_read(redis_server, r):
    async def scenario() -> None:
        ar = aioredis.from_url(redis_server.url)
        pub = Publisher(ar, STREAM, maxlen=1_000, source="test")
        await pub.setup()
        await publish(pub, 0, 3_000)
        for g in ("candles", "analytics"):
            got = await ar.xreadgroup(g, "x", {STREAM: ">"})
            await ar.xack(STREAM, g, *[eid for eid, _ in got[0][1]])
        await ar.xgroup_create(STREAM, "late", id="$")  # joined after everything was written
        await publish(pub, 3_000, 500)
        await pub.trim()
        assert await ar.xlen(STREAM) == 1_000  # 'late' needs only the 500 new ones, which are kept
        await ar.aclose()

    run(scenario())
    assert [int(f[b"id"]) for _, f in r.xrange(STREAM)][-500:] == list(range(3_000, 3_500))


def test_malformed_frames_are_counted_and_dead_lettered_never_a_crash(tmp_path, redis_server, r):
    good = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT","t":7,"p":"1.50000000",'
            '"q":"2.00000000","T":1,"m":false,"M":true}}')
    lines = [
        f"1 {good}",
        "2 this is not json",
        '3 {"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT","t":8,"p":"NaN","q":"1","T":1,"m":false}}',
        "no-receive-time-here",
        '4 {"lastUpdateId":1,"bids":[],"asks":[]}',
        '5 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}',
    ]
    path = tmp_path / "mixed.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    import subprocess

    proc = subprocess.run(python_module("ingest", "--source", "replay", "--replay-file", str(path), "--speed", "0"),
                          env=service_env(redis_server.url), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert r.xlen(STREAM) == 2
    dead = r.xrange("stream:deadletter")
    assert [d[b"raw"] for _, d in dead] == [b"this is not json", lines[2].split(" ", 1)[1].encode(),
                                            b"no-receive-time-here"]
    assert b"data.p" in dead[1][1][b"reason"] and b"not JSON" in dead[0][1][b"reason"]
    st = status(r, "ingest")
    assert (st["dead_letters"], st["skipped"], st["published"], st["frames"]) == (3, 1, 2, 6)


def test_dead_letters_are_bounded_in_bytes_and_counted_per_reason_class(redis_server, r):
    """DEADLETTER_MAX_MB bounds the stream whatever arrives: each raw frame is cut to 64 KiB and the entry count
    to the bound over the largest entry."""

    async def scenario() -> Publisher:
        ar = aioredis.from_url(redis_server.url)
        pub = Publisher(ar, STREAM, maxlen=1_000, source="test", deadletter_max_mb=0.5)
        await pub.setup()
        for i in range(40):
            pub.dead_letter("not JSON: " + "why " * 2_000, bytes([i]) * 200_000, i, "not-json")
        pub.dead_letter("symbol mismatch", b"{}", 99, "symbol-mismatch")
        await pub.flush()
        await ar.aclose()
        return pub

    pub = run(scenario())
    entries = r.xrange("stream:deadletter")
    assert len(entries) == pub.dead_maxlen == 7  # 0.5 MiB over ~65 KiB entries
    assert sum(len(f[b"raw"]) + len(f[b"reason"]) for _, f in entries) <= 0.5 * 2**20
    assert all(len(f[b"raw"]) <= 64 * 1024 and len(f[b"reason"].decode()) <= 1024 for _, f in entries)
    assert entries[-1][1][b"reason"] == b"symbol mismatch"  # the newest are kept
    assert pub.dead_letters == 41 and dict(pub.dead_letter_reasons) == {"not-json": 40, "symbol-mismatch": 1}
