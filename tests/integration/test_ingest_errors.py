"""Whatever raises while ingest handles one frame dead-letters that frame; the feed goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

import ingest.loop
from ingest.loop import Ingest
from ingest.sources.base import FeedEvent, SourceItem
from qs_common.settings import Settings

pytestmark = pytest.mark.integration

TRADE = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 1, "p": "1.00000000", "q": "1.00000000",
         "T": 1723161255342, "m": True, "M": True}


class ListSource:
    name = "replay"

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    async def items(self) -> AsyncIterator[SourceItem]:
        yield FeedEvent("connected", "list")
        for raw in self.frames:
            yield 1723161255342 * 1_000_000, raw
        yield FeedEvent("finished", "end")


def test_an_exception_on_one_frame_dead_letters_it_and_the_rest_are_published(redis_server, r, monkeypatch, caplog):
    frames = [json.dumps({"stream": "btcusdt@trade", "data": TRADE | {"t": i}}).encode() for i in range(1, 6)]
    real_parse = ingest.loop.take_frame  # the parser as the loop calls it

    def parse(recv_ns, raw, rules, add_book):  # a bug that only some frames reach
        if b'"t": 2,' in raw or b'"t": 4,' in raw:
            raise RecursionError("maximum recursion depth exceeded")
        return real_parse(recv_ns, raw, rules, add_book)

    monkeypatch.setattr(ingest.loop, "take_frame", parse)

    async def scenario() -> Ingest:
        ar = aioredis.from_url(redis_server.url)
        app = Ingest(Settings(source="replay", redis_url=redis_server.url), ListSource(frames), ar)
        await app.run()
        await ar.aclose()
        return app

    app = asyncio.run(scenario())
    assert [int(f[b"id"]) for _, f in r.xrange("stream:ticks")] == [1, 3, 5]
    dead = r.xrange("stream:deadletter")
    assert [d[b"raw"] for _, d in dead] == [frames[1], frames[3]]
    assert dead[0][1][b"reason"] == b"ingest error: RecursionError: maximum recursion depth exceeded"
    assert app.status()["dead_letter_reasons"] == {"exception": 2}
    assert caplog.text.count("Traceback") == 1  # one traceback per kind of failure, not one per frame
