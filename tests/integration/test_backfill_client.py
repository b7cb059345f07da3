"""The klines client against the local klines server: paging semantics, weight, 429/500 handling, µs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from qs_common.venues.binance.config import Venue
from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, ETH_RECORDING
from tests.integration.klines_server import KlinesServer, fixture_book
from worker.backfill.client import FetchError, KlinesClient, RejectedRequest, Stopped
from worker.backfill.klines import klines_frame

pytestmark = pytest.mark.integration

DAY = 1723075200000  # 2024-08-08 00:00Z
T0 = DAY + 1435 * 60_000  # 23:55
BOOK = fixture_book(BTC_KLINES_1M, [BTC_RECORDING, ETH_RECORDING], T0)


@pytest.fixture
def server() -> Iterator[KlinesServer]:
    with KlinesServer(BOOK) as s:
        yield s


def client(url: str, stop: threading.Event | None = None, limit: int = 1000) -> KlinesClient:
    return KlinesClient(url, Venue.BINANCE_SPOT, limit, stop or threading.Event(), backoff_max_s=0.2)


def test_server_semantics(server: KlinesServer) -> None:
    import httpx

    def get(**params: object) -> list[list[object]]:
        resp = httpx.get(f"{server.url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", **params})
        assert resp.status_code == 200
        return resp.json()

    assert [k[0] for k in get()] == [k[0] for k in BOOK[("BTCUSDT", "1m")][-500:]]  # newest 500 by default
    assert len(get(startTime=DAY, limit=5000)) == 1000  # capped
    assert [k[0] for k in get(startTime=DAY + 60_000, endTime=DAY + 180_000)] == [DAY + 60_000 * i for i in (1, 2, 3)]
    assert [k[0] for k in get(endTime=DAY + 120_000, limit=2)] == [DAY + 60_000, DAY + 120_000]
    bad = httpx.get(f"{server.url}/api/v3/klines", params={"symbol": "NOPE", "interval": "1m"})
    assert bad.status_code == 400 and bad.json()["code"] == -1121
    assert int(bad.headers["x-mbx-used-weight-1m"]) == 2 * len(server.requests)


def test_pages_weight_and_exact_values(server: KlinesServer) -> None:
    c = client(server.url)
    page = c.fetch("BTCUSDT", "1m", DAY, DAY + 1439 * 60_000)
    rest = c.fetch("BTCUSDT", "1m", page[-1][0] + 60_000, DAY + 1439 * 60_000)
    assert len(page) == 1000 and len(rest) == 440
    assert page + rest == BOOK[("BTCUSDT", "1m")]
    assert c.stats.requests == 2 and c.stats.weight_spent == 4 and c.stats.weight_used_1m >= 4


def test_429_is_obeyed_with_retry_after_and_500_retried(server: KlinesServer) -> None:
    server.answer_429 = {1}
    server.answer_500 = {2, 3}
    c = client(server.url)
    rows = c.fetch("BTCUSDT", "1s", T0, T0 + 9_000)
    assert len(rows) == 10 and server.statuses == [429, 500, 500, 200]
    assert c.stats.rate_limited == 1 and c.stats.retries == 2 and c.stats.requests == 4


def test_persistent_failure_and_rejection(server: KlinesServer) -> None:
    server.answer_500 = set(range(1, 20))
    with pytest.raises(FetchError, match="HTTP 500"):
        client(server.url).fetch("BTCUSDT", "1m", DAY, DAY)
    assert len(server.requests) == 6
    server.answer_500 = set()
    with pytest.raises(RejectedRequest, match="Invalid interval"):
        client(server.url).fetch("BTCUSDT", "7x", DAY, DAY)


def test_budget_is_kept_by_waiting_and_stop_ends_the_wait(server: KlinesServer) -> None:
    stop = threading.Event()
    c = client(server.url, stop, limit=2)
    c.fetch("BTCUSDT", "1m", DAY, DAY)
    stop.set()
    with pytest.raises(Stopped):
        c.fetch("BTCUSDT", "1m", DAY, DAY)  # a second request would exceed the budget: it waits
    assert c.stats.budget_waits == 1 and len(server.requests) == 1


def test_microsecond_answers_parse_like_millisecond_ones() -> None:
    with KlinesServer(BOOK, time_unit="us") as us_server, KlinesServer(BOOK) as ms_server:
        a = client(us_server.url).fetch("BTCUSDT", "1s", T0, T0 + 59_000)
        b = client(ms_server.url).fetch("BTCUSDT", "1s", T0, T0 + 59_000)
    assert a[0][0] == T0 * 1000 and b[0][0] == T0
    assert klines_frame("BTCUSDT", "1s", 1000, a).equals(klines_frame("BTCUSDT", "1s", 1000, b))
