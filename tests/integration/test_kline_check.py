"""The kline check against the local klines server: live 1m candles in a real DuckDB file, one minute of each
symbol wrong (trades lost, or a quantity off), compared and repaired to Binance's own klines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qs_common.settings import Settings
from qs_common.venues.binance.config import Venue
from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, ETH_RECORDING
from tests.integration.klines_server import Kline, KlinesServer, recorded_book
from tests.integration.procs import WorkerProc
from tests.recordings import trades
from worker.backfill.client import KlinesClient
from worker.backfill.kline_check import KlineCheck, VerifyError
from worker.backfill.klines import klines_frame
from worker.backfill.storage import RestCandleStore
from worker.candles import trades_frame
from worker.store import CandleStore

pytestmark = pytest.mark.integration

M = 60_000
T0 = 1723161300000  # 23:55, from where the recordings hold every trade
BOOK = recorded_book(BTC_KLINES_1M, [BTC_RECORDING, ETH_RECORDING], T0)
KLINE_INDEX = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7, "trades": 8,
               "taker_buy_volume": 9, "taker_buy_quote_volume": 10}
BTC_BAD = T0 + 2 * M  # 23:57: one trade's quantity is off (same trade count: the backfill would keep it)
ETH_BAD = T0 + 3 * M  # 23:58: 12 trades lost, as in the AOF loss the issue describes
LOST = 12


def live_trades(symbol_recording: Path) -> list[dict[str, Any]]:
    """The recorded trades from 23:55 on, with this test's damage."""
    ts = [t for t in trades(symbol_recording) if t["T"] >= T0]
    if ts[0]["s"] == "ETHUSDT":
        lost = [t for t in ts if ETH_BAD <= t["T"] < ETH_BAD + M][100:100 + LOST]
        ts = [t for t in ts if t not in lost]
    else:
        first = next(i for i, t in enumerate(ts) if t["T"] >= BTC_BAD)
        ts[first] = {**ts[first], "q": "0.00000001" if ts[first]["q"] != "0.00000001" else "0.00000002"}
    return ts


def apply(store: CandleStore, ts: list[dict[str, Any]]) -> None:
    store.apply_trades(trades_frame([t["s"] for t in ts], [t["t"] for t in ts], [t["p"] for t in ts],
                                    [t["q"] for t in ts], [t["T"] for t in ts], [t["m"] for t in ts]))


def settings(**kw: Any) -> Settings:
    return Settings(**{"symbols": ("BTCUSDT", "ETHUSDT"), "kline_check": True, "kline_check_delay_s": 0, **kw})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CandleStore]:
    s = CandleStore(tmp_path / "market_data.duckdb")
    yield s
    s.close()


@pytest.fixture
def server() -> Iterator[KlinesServer]:
    with KlinesServer(BOOK) as srv:
        yield srv


def client_for(server: KlinesServer) -> KlinesClient:
    return KlinesClient(server.url, Venue.BINANCE_SPOT, 1_000, threading.Event())


def assert_equal_to_klines(store: CandleStore, symbol: str, first: int, last: int) -> dict[int, str]:
    """Every 1m candle in [first, last] equals the served kline in every field; returns the sources."""
    got = {r["open_time"]: r for r in store.candles(symbol, "1m", first, last, 1000).iter_rows(named=True)}
    want = {k[0]: k for k in BOOK[(symbol, "1m")] if first <= k[0] <= last}
    assert sorted(got) == sorted(want)
    for t, k in want.items():
        for name, i in KLINE_INDEX.items():
            assert str(got[t][name]) == str(k[i]), (symbol, t, name, got[t][name], k[i])
    return {t: r["source"] for t, r in got.items()}


def sources(store: CandleStore, outcome: str = "replaced") -> list[tuple[Any, ...]]:
    return store.con.sql("SELECT symbol, interval, open_time, live_trades, rest_trades, outcome, reason, differed "
                         "FROM candle_sources WHERE outcome = $o ORDER BY symbol, open_time", params={"o": outcome}
                         ).fetchall()


def kline(symbol: str, open_ms: int) -> Kline:
    return next(k for k in BOOK[(symbol, "1m")] if k[0] == open_ms)


def test_wrong_minutes_are_repaired_to_the_klines_and_recorded(store: CandleStore, server: KlinesServer) -> None:
    for rec in (BTC_RECORDING, ETH_RECORDING):
        apply(store, live_trades(rec))
    with pytest.raises(AssertionError):  # the damage is real before the check
        assert_equal_to_klines(store, "ETHUSDT", T0, T0 + 4 * M)
    check = KlineCheck(settings(), RestCandleStore(store), ["1s", "1m", "5m"], 3_600_000)
    client = client_for(server)
    while check.step(client):
        pass
    client.close()

    # 23:55..23:59 closed; 00:00 is still forming at the newest trade (00:00:01) and is not checked
    btc = assert_equal_to_klines(store, "BTCUSDT", T0, T0 + 4 * M)
    eth = assert_equal_to_klines(store, "ETHUSDT", T0, T0 + 4 * M)
    assert [t for t, src in btc.items() if src == "rest"] == [BTC_BAD]
    assert [t for t, src in eth.items() if src == "rest"] == [ETH_BAD]
    btc_n, eth_n = kline("BTCUSDT", BTC_BAD)[8], kline("ETHUSDT", ETH_BAD)[8]
    rows = sources(store)
    assert [r[:7] for r in rows] == [
        ("BTCUSDT", "1m", BTC_BAD, btc_n, btc_n, "replaced", "kline-check"),
        ("ETHUSDT", "1m", ETH_BAD, eth_n - LOST, eth_n, "replaced", "kline-check"),
    ]
    assert rows[0][7].startswith("volume,quote_volume") and "trades" not in rows[0][7]  # same count, wrong qty
    assert rows[1][7].startswith("trades,volume,quote_volume")
    agreed = sources(store, "agreed")
    assert len(agreed) == 8 and {(r[6], r[7]) for r in agreed} == {("kline-check", "")}
    status = check.status()
    assert (status["kline_checked"], status["kline_mismatches"], status["kline_repaired"]) == (10, 2, 2)
    assert status["kline_unverified"] == 0 and status["kline_check_pending"] == 0
    assert status["kline_checked_through"] == {"BTCUSDT": T0 + 4 * M, "ETHUSDT": T0 + 4 * M}
    assert status["last_kline_mismatch"]["open_time"] == ETH_BAD  # ETHUSDT is checked second: same start
    assert len(server.requests) == 2  # one request per symbol covers all its minutes
    # the 1s and 5m candles of each repaired minute are left to follow-up jobs of the backfill thread
    assert {(j.symbol, j.interval, j.start_ms, j.end_ms, j.origin) for j in check.take_followups()} == {
        ("BTCUSDT", "1s", BTC_BAD, BTC_BAD + M, "kline-check"), ("BTCUSDT", "5m", T0, T0 + 5 * M, "kline-check"),
        ("ETHUSDT", "1s", ETH_BAD, ETH_BAD + M, "kline-check"), ("ETHUSDT", "5m", T0, T0 + 5 * M, "kline-check"),
    }


def test_progress_survives_a_restart_and_rest_minutes_cost_nothing(tmp_path: Path, server: KlinesServer) -> None:
    path = tmp_path / "market_data.duckdb"
    store = CandleStore(path)
    # BTCUSDT's minutes came from REST before the live trades arrived: nothing to check there
    RestCandleStore(store).write(klines_frame("BTCUSDT", "1m", M, BOOK[("BTCUSDT", "1m")][1435:1440]), T0 + 5 * M)
    for rec in (BTC_RECORDING, ETH_RECORDING):
        apply(store, live_trades(rec))
    check = KlineCheck(settings(), RestCandleStore(store), ["1s", "1m", "5m"], 3_600_000)
    client = client_for(server)
    while check.step(client):
        pass
    assert [q["symbol"] for q in server.requests] == ["ETHUSDT"]
    assert check.status()["kline_checked"] == 5 and check.status()["kline_mismatches"] == 1
    store.close()

    reopened = CandleStore(path)
    try:
        again = KlineCheck(settings(), RestCandleStore(reopened), ["1s", "1m", "5m"], 3_600_000)
        # BTCUSDT's only live minute (00:00) is still forming: it has nothing checked yet
        assert again.progress == {"ETHUSDT": T0 + 4 * M}
        assert not again.step(client) and len(server.requests) == 1  # nothing checked twice
        assert again.status()["kline_check_pending"] == 0
    finally:
        client.close()
        reopened.close()


def test_the_weight_budget_defers_the_second_symbol(store: CandleStore, server: KlinesServer) -> None:
    for rec in (BTC_RECORDING, ETH_RECORDING):
        apply(store, live_trades(rec))
    client = client_for(server)
    try:
        for _attempt in range(2):  # a calendar minute that turns during the rounds renews the budget: again
            server.requests.clear()
            minute = int(time.time() // 60)
            check = KlineCheck(settings(kline_check_weight=client.weight), RestCandleStore(store),
                               ["1s", "1m", "5m"], 3_600_000)
            check.progress.clear()
            store.con.execute("DELETE FROM kline_check_progress")
            rounds = [check.step(client) for _ in range(3)]
            if int(time.time() // 60) == minute:
                break
        assert rounds == [True, False, False]
        assert len(server.requests) == 1 and check.status()["kline_weight_used_1m"] == client.weight
        assert check.status()["kline_check_pending"] == 5  # the other symbol's minutes wait for the next minute
    finally:
        client.close()


def test_verify_on_demand_reports_and_repairs_any_range(store: CandleStore, server: KlinesServer) -> None:
    for rec in (BTC_RECORDING, ETH_RECORDING):
        apply(store, live_trades(rec))
    check = KlineCheck(settings(kline_check=False), RestCandleStore(store), ["1s", "1m", "5m"], 3_600_000)
    client = client_for(server)
    now = max(t["T"] for t in trades(ETH_RECORDING))
    try:
        out = check.verify(client, "ETHUSDT", T0, T0 + 10 * M, now)  # past "now": only closed minutes
        assert (out["start"], out["end"]) == (T0, T0 + 4 * M)
        assert (out["checked"], out["mismatches"], out["repaired"], out["unverified"]) == (5, 1, 1, 0)
        assert [(d["open_time"], d["outcome"], d["reason"]) for d in out["details"]] == [
            (ETH_BAD, "replaced", "verify")]
        assert out["details"][0]["differed"].startswith("trades,volume,quote_volume")
        assert_equal_to_klines(store, "ETHUSDT", T0, T0 + 4 * M)
        assert check.verify(client, "ETHUSDT", T0, T0 + 4 * M, now)["mismatches"] == 0  # repaired for good
        with pytest.raises(VerifyError, match="end: before start"):
            check.verify(client, "ETHUSDT", T0 + M, T0, now)
        with pytest.raises(VerifyError, match="at most"):
            check.verify(client, "ETHUSDT", 0, now, now)
    finally:
        client.close()


def test_verify_without_a_rest_source_is_503_naming_why(tmp_path: Path, redis_server) -> None:
    # the suite's default worker: no backfill, no kline check (there is no Binance here)
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log")
    try:
        worker.wait_healthy()
        resp = httpx.post(f"{worker.api}/candles/verify", params={"symbol": "BTCUSDT", "start": T0, "end": T0 + M},
                          timeout=30)
        assert resp.status_code == 503 and "KLINE_CHECK" in resp.json()["error"]
    finally:
        assert worker.stop() == 0, worker.log()
