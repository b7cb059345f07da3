"""The worker's HTTP API, served by a real `python -m worker --role candles` over a real DuckDB file."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import httpx
import pytest

from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.integration.procs import Proc, WorkerProc
from tests.recordings import reference_candles, trades
from tests.unit.test_candles import frame_of
from worker.store import CandleStore

pytestmark = pytest.mark.integration

BTC = trades(BTC_RECORDING)
MINUTE = 1723161300000  # 2024-08-08T23:55:00Z


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from tests.conftest import start_redis

    tmp = tmp_path_factory.mktemp("api")
    server = start_redis(tmp / "redis")
    store = CandleStore(tmp / "data" / "market_data.duckdb")
    store.apply_trades(frame_of(BTC + trades(ETH_RECORDING)))
    store.close()
    worker = WorkerProc(server.url, tmp / "data", tmp / "worker.log")
    Proc.running.remove(worker)  # lives for the module, not one test
    try:
        worker.wait_healthy()
        yield worker.api
    finally:
        worker.stop()
        server.proc.terminate()
        server.proc.wait(10)


def get(api: str, path: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{api}{path}", params=params, timeout=30)


def test_health_and_symbols(api):
    assert get(api, "/health").json() == {"status": "ok", "db": True, "redis": True}
    rows = get(api, "/symbols").json()["symbols"]
    assert {(s["symbol"], s["interval"]) for s in rows} == {
        (s, i) for s in ("BTCUSDT", "ETHUSDT") for i in ("1s", "1m", "5m")}


def test_json_candles_keep_exact_decimals(api):
    body = get(api, "/candles", symbol="btcusdt", interval="1m", start=MINUTE, end=MINUTE).json()
    assert body["symbol"] == "BTCUSDT" and len(body["candles"]) == 1
    c = body["candles"][0]
    want = reference_candles(BTC, 60_000)[MINUTE]
    assert (c["open"], c["close"], c["trades"]) == ("61828.00000000", "61782.25000000", 1255)
    assert Decimal(c["quote_volume"]) == want["quote_volume"].quantize(Decimal("1e-8"))
    assert Decimal(c["vwap"]) == (want["quote_volume"] / want["volume"]).quantize(Decimal("1e-8"))
    assert c["close_time"] == MINUTE + 59_999 and c["source"] == "live"


@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-08-08T23:55:00Z", "2024-08-08T23:57:00"), ("2024-08-08T23:55:00+00:00", str(1723161420000 * 1000)),
     (str(MINUTE), "2024-08-09T01:57:00+02:00")],
)
def test_time_forms_select_the_same_range(api, start, end):
    body = get(api, "/candles", symbol="BTCUSDT", interval="1m", start=start, end=end).json()
    assert [c["open_time"] for c in body["candles"]] == [MINUTE, MINUTE + 60_000, MINUTE + 120_000]


def test_csv_contract_header_and_rows(api):
    resp = get(api, "/candles", symbol="BTCUSDT", interval="5m", format="csv")
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0][:9] == ["open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
                           "taker_buy_volume"]
    want = reference_candles(BTC, 300_000)
    assert [int(r[0]) for r in rows[1:]] == sorted(want)
    for r in rows[1:]:
        w = want[int(r[0])]
        assert (Decimal(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), Decimal(r[5])) == (
            w["open"], w["high"], w["low"], w["close"], w["volume"])
        assert int(r[7]) == w["trades"] and Decimal(r[8]) == w["taker_buy_volume"]


def test_derived_intervals_aggregate_stored_candles(api):
    m15 = get(api, "/candles", symbol="BTCUSDT", interval="15m").json()["candles"]
    h1 = get(api, "/candles", symbol="BTCUSDT", interval="1h").json()["candles"]
    want = reference_candles(BTC, 900_000)
    assert [c["open_time"] for c in m15] == sorted(want)
    for c in m15:
        w = want[c["open_time"]]
        assert (Decimal(c["open"]), Decimal(c["high"]), Decimal(c["low"]), Decimal(c["close"]), c["trades"]) == (
            w["open"], w["high"], w["low"], w["close"], w["trades"])
    assert sum(c["trades"] for c in h1) == len(BTC)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"interval": "1m"}, "symbol"), ({"symbol": "BTC-USDT"}, "symbol"), ({"symbol": "BTCUSDT", "interval": "7m"},
     "interval"), ({"symbol": "BTCUSDT", "start": "yesterday"}, "start"), ({"symbol": "BTCUSDT", "limit": "0"},
     "limit"), ({"symbol": "BTCUSDT", "format": "xml"}, "format")],
)
def test_bad_parameters_get_a_clear_400(api, params, message):
    resp = get(api, "/candles", **params)
    assert resp.status_code == 400 and resp.json()["error"].startswith(message)


def test_limit_returns_the_newest(api):
    body = get(api, "/candles", symbol="BTCUSDT", interval="1s", limit=3).json()
    times = [c["open_time"] for c in body["candles"]]
    assert len(times) == 3 and times == sorted(times) and times[-1] == max(reference_candles(BTC, 1000))


def test_import_adds_missing_candles_and_never_overwrites(api):
    body = ("open_time,open,high,low,close,volume\n"
            f"{MINUTE - 600_000},1.0,2.0,0.5,1.5,10\n"
            f"{MINUTE},1.0,2.0,0.5,1.5,10\n")
    resp = httpx.post(f"{api}/candles/import", params={"symbol": "BTCUSDT", "interval": "1m"}, content=body)
    assert resp.json() == {"imported": 1, "skipped": 1, "unit": "ms", "first": MINUTE - 600_000, "last": MINUTE,
                           "rows": 2}
    rows = get(api, "/candles", symbol="BTCUSDT", interval="1m", start=MINUTE - 600_000, end=MINUTE).json()["candles"]
    assert [(c["open_time"], c["source"]) for c in rows] == [
        (MINUTE - 600_000, "import"), (MINUTE - 60_000, "live"), (MINUTE, "live")]
    assert rows[-1]["open"] == "61828.00000000"


def test_a_bad_import_names_row_and_column_and_stores_nothing(api):
    body = ("open_time,open,high,low,close,volume\n"
            f"{MINUTE - 1_200_000},1.0,2.0,0.5,1.5,10\n"
            f"{MINUTE - 1_140_000},1.0,two,0.5,1.5,10\n")
    resp = httpx.post(f"{api}/candles/import", params={"symbol": "BTCUSDT", "interval": "1m"}, content=body)
    assert resp.status_code == 400 and resp.json()["error"] == "row 2, column high: 'two' is not a valid number"
    rows = get(api, "/candles", symbol="BTCUSDT", interval="1m", start=MINUTE - 1_200_000, end=MINUTE - 1_140_000)
    assert rows.json()["candles"] == []
    missing = httpx.post(f"{api}/candles/import", params={"symbol": "BTCUSDT"}, content="open_time,open\n1,2\n")
    assert missing.status_code == 400 and "missing column(s) high, low, close, volume" in missing.json()["error"]
