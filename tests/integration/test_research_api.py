"""The research API (/research/*) of a real `python -m worker` over a real DuckDB file, with candles imported
through `POST /candles/import`: the scheduled scan, an on-demand scan, its CSV, the backtest and GARCH.

Numbers are checked against the references on the very closes the API serves: statsmodels' `coint`, the
pure backtest and `arch` (through qs_analytics.garch).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time

import httpx
import numpy as np
import pytest
from statsmodels.tsa.stattools import coint

from qs_analytics.alerts import AlertRule
from qs_analytics.backtest import BacktestParams, run_backtest
from qs_analytics.garch import fit_garch
from tests.integration.procs import Proc, WorkerProc, wait_for
from tests.research_candles import SYMBOLS, candles_csv

pytestmark = pytest.mark.integration

TOKEN = "research-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    from tests.conftest import start_redis

    tmp = tmp_path_factory.mktemp("research")
    server = start_redis(tmp / "redis")
    w = WorkerProc(server.url, tmp / "data", tmp / "worker.log", ACCESS_TOKEN=TOKEN, SCAN_EVERY_S="1",
                   SCAN_SYMBOLS=",".join(SYMBOLS), GARCH_EVERY_S="0", SYMBOLS="BTCUSDT,ETHUSDT")  # fmt: skip
    Proc.running.remove(w)  # lives for the module, not one test
    try:
        w.wait_healthy()
        for sym in SYMBOLS:
            resp = httpx.post(f"{w.api}/candles/import", params={"symbol": sym, "interval": "1m"},
                              content=candles_csv(sym).encode(), headers=AUTH, timeout=60)  # fmt: skip
            assert resp.status_code == 200, resp.text
            assert resp.json()["imported"] == 1440
        yield w, server
    finally:
        w.stop()
        server.proc.terminate()
        server.proc.wait(10)


def closes(api: str, symbol: str) -> np.ndarray:
    body = httpx.get(f"{api}/candles", params={"symbol": symbol, "interval": "1m", "limit": 1440}, timeout=30).json()
    return np.array([float(c["close"]) for c in body["candles"]])


def test_the_scheduled_scan_stores_a_run_with_statsmodels_numbers(worker):
    w, _ = worker

    def good_scheduled_run():
        runs = httpx.get(f"{w.api}/research/scan/runs", timeout=10).json()["runs"]
        return next((r for r in runs if r["trigger"] == "schedule" and r["pairs"] == 6 and not r["error"]), None)

    run = wait_for(good_scheduled_run, 60, "a scheduled scan over the imported candles")
    assert run["symbols"] == list(SYMBOLS) and run["interval"] == "1m" and run["n_points"] == 1440
    assert run["params"]["test"].startswith("engle-granger")
    body = httpx.get(f"{w.api}/research/scan", params={"run": run["run_id"]}, timeout=10).json()
    rows = body["rows"]
    assert len(rows) == 6
    assert [r["p_value"] for r in rows] == sorted(r["p_value"] for r in rows)  # best first
    best = rows[0]
    assert {best["y"], best["x"]} == {"ETHUSDT", "BTCUSDT"} and best["p_value"] < 0.01
    # the reference: statsmodels' coint in both directions, on the closes the API serves
    a, b = closes(w.api, best["sym_a"]), closes(w.api, best["sym_b"])
    p_ab = coint(a, b, trend="c")[1]
    p_ba = coint(b, a, trend="c")[1]
    assert math.isclose(best["p_y_on_x"], p_ab, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(best["p_x_on_y"], p_ba, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(best["p_value"], min(p_ab, p_ba), rel_tol=1e-6, abs_tol=1e-12)
    worst = rows[-1]
    assert worst["p_value"] > 0.05  # independent random walks are not called cointegrated
    assert all(r["liquidity"] > 0 for r in rows)


def test_on_demand_scan_is_a_write_and_its_csv_carries_the_parameters(worker):
    w, _ = worker
    body = {"symbols": ["ETHUSDT", "BTCUSDT", "SOLUSDT"], "lookback": 500}
    assert httpx.post(f"{w.api}/research/scan", json=body, timeout=60).status_code == 401
    resp = httpx.post(f"{w.api}/research/scan", json=body, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    run = resp.json()["run"]
    assert (run["trigger"], run["pairs"], run["n_points"], run["lookback"]) == ("demand", 3, 500, 500)
    text = httpx.get(f"{w.api}/research/scan", params={"run": run["run_id"], "format": "csv"}, timeout=10).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 3
    assert {(r["run_id"], r["interval"], r["lookback"], r["symbols"]) for r in table} == {
        (str(run["run_id"]), "1m", "500", "ETHUSDT BTCUSDT SOLUSDT")}
    assert float(table[0]["p_value"]) <= float(table[1]["p_value"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"symbols": ["BTCUSDT"]}, "symbols: need 2"), ({"interval": "7m"}, "interval:"),
     ({"lookback": 10}, "lookback:"), ({"symbols": ["BTC-USD", "ETHUSDT"]}, "symbols:"),
     ({"symbols": ["BTCUSDT", "NOPEUSDT"]}, "NOPEUSDT"), ({"colour": 1}, "colour: unknown field")],
)
def test_a_bad_scan_request_is_a_400_naming_the_field(worker, body, needle):
    w, _ = worker
    resp = httpx.post(f"{w.api}/research/scan", json=body, headers=AUTH, timeout=60)
    if needle == "NOPEUSDT":  # a symbol without candles: the run is stored with its reason
        assert resp.status_code == 200 and needle in resp.json()["run"]["error"]
    else:
        assert resp.status_code == 400 and needle in resp.json()["error"]


def test_backtest_on_stored_candles_equals_the_pure_backtest(worker):
    w, _ = worker
    params = {"window": 60, "entry": 2.0, "exit": 0.5, "stop": 4.0, "max_hold": 30, "fee_bps": 1.0,
              "slippage_bps": 0.5, "notional": 10_000.0}  # fmt: skip
    req = {"params": params, "source": {"kind": "candles", "y": "ETHUSDT", "x": "BTCUSDT", "limit": 1440},
           "sweep": {"entries": [1.5, 2.0], "windows": [30, 60, 120]}}  # fmt: skip
    assert httpx.post(f"{w.api}/research/backtest", json=req, timeout=60).status_code == 401
    resp = httpx.post(f"{w.api}/research/backtest", json=req, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    x, y = closes(w.api, "BTCUSDT"), closes(w.api, "ETHUSDT")
    ref = run_backtest(list(x), list(y), BacktestParams(60, 2.0, 0.5, 10_000.0, 1.0, 0.5, 4.0, 30))
    assert out["rows"] == 1440 and len(out["trades"]) == len(ref.trades) > 0
    for got, want in zip(out["trades"], ref.trades, strict=True):
        assert (got["entry_row"], got["exit_row"], got["side"], got["exit_reason"]) == (
            want.entry_row, want.exit_row, want.side, want.exit_reason)
        assert math.isclose(got["net_pnl"], want.net_pnl, rel_tol=1e-12, abs_tol=1e-9)
    assert out["equity"]["equity"] == pytest.approx(ref.equity, rel=1e-12, abs=1e-9)
    assert out["summary"]["periods_per_year"] == pytest.approx(365.25 * 1440)
    assert len(out["sweep"]["grid"]) == 3 and len(out["sweep"]["grid"][0]) == 2
    assert out["walk_forward"]["split_row"] == 720 and out["walk_forward"]["chosen"] == out["sweep"]["best_in_sample"]
    # the Kalman β source: the API's answer is the pure backtest's with beta_source="kalman"
    kreq = {"params": {**params, "beta_source": "kalman"}, "source": req["source"]}
    kout = httpx.post(f"{w.api}/research/backtest", json=kreq, headers=AUTH, timeout=60).json()
    kref = run_backtest(list(x), list(y), BacktestParams(60, 2.0, 0.5, 10_000.0, 1.0, 0.5, 4.0, 30, "kalman"))
    assert kout["params"]["beta_source"] == "kalman"
    assert [(t["entry_row"], t["exit_row"]) for t in kout["trades"]] == [(t.entry_row, t.exit_row) for t in kref.trades]
    assert kout["equity"]["equity"] == pytest.approx(kref.equity, rel=1e-12, abs=1e-9)
    # uploaded rows with quoted spreads (null = no book data at the row): half is added to each fill's cost
    sx = [None if i % 9 == 0 else 1.0 + (i % 5) * 0.5 for i in range(len(x))]
    sy = [2.0 + (i % 3) for i in range(len(x))]
    rows = [[float(i), a, b] for i, (a, b) in enumerate(zip(x, y, strict=True))]
    sreq = {"params": params, "source": {"kind": "rows", "rows": rows, "spread_bps_x": sx, "spread_bps_y": sy}}
    sout = httpx.post(f"{w.api}/research/backtest", json=sreq, headers=AUTH, timeout=60).json()
    sref = run_backtest(list(x), list(y), BacktestParams(60, 2.0, 0.5, 10_000.0, 1.0, 0.5, 4.0, 30),
                        spread_bps_x=sx, spread_bps_y=sy)  # fmt: skip
    assert sout["half_spread_costs"] == ["x", "y"] and len(sout["trades"]) == len(sref.trades)
    assert [t["costs"] for t in sout["trades"]] == pytest.approx([t.costs for t in sref.trades], rel=1e-12)
    assert all(a["costs"] > b.costs for a, b in zip(sout["trades"], ref.trades, strict=True))


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"source": {"kind": "rows", "rows": [[1, 2.0, -3.0]]}}, "row 1: prices"),
     ({"params": {"window": 1}, "source": {"kind": "rows", "rows": []}}, "params.window"),
     ({"source": {"kind": "rows", "rows": [[i, 1.0 + i, 2.0 + i] for i in range(20)]}}, "aligned rows"),
     ({"source": {"kind": "files"}}, "source"), ({"params": {"beta_source": "theilsen"}, "source": {}}, "beta_source"),
     ({"source": {"kind": "rows", "rows": [[1, 2.0, 3.0]], "spread_bps_x": [1.0, 2.0]}}, "spread_bps_x: 2 values")],
)
def test_a_bad_backtest_request_is_a_400_naming_the_field(worker, body, needle):
    w, _ = worker
    resp = httpx.post(f"{w.api}/research/backtest", content=json.dumps(body), headers=AUTH, timeout=60)
    assert resp.status_code == 400 and needle in resp.json()["error"], resp.text


def test_garch_on_demand_is_stored_served_and_published_in_redis(worker):
    w, server = worker
    resp = httpx.post(f"{w.api}/research/garch", params={"symbol": "BTCUSDT"}, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    fit = resp.json()["fits"][0]
    want = fit_garch(closes(w.api, "BTCUSDT"), 365.25 * 1440)
    # to the optimiser's precision, not to the bit: the worker runs BLAS on one thread (its analytics handler sets
    # that for the whole process), this test process on several, and the order of the sums differs
    assert fit["omega"] == pytest.approx(want.omega, rel=1e-6)
    assert fit["sigma_next"] == pytest.approx(want.sigma_next, rel=1e-6)
    served = httpx.get(f"{w.api}/research/garch", params={"symbol": "btcusdt"}, timeout=10).json()["fits"]
    assert served[0]["fitted_ms"] == fit["fitted_ms"] and served[0]["sigma_next"] == fit["sigma_next"]
    r = server.client()
    published = json.loads(r.get("symbol:garch:BTCUSDT"))
    assert published["garch_sigma_next"] == fit["sigma_next"]
    assert published["garch_fitted_ms"] == fit["fitted_ms"]
    # the analytics consumer joins it into the symbol's statistics with its next write (alert-rule material)
    now = time.time_ns()
    r.xadd("stream:ticks", {"v": "1", "sym": "BTCUSDT", "kind": "trade", "ts": now // 1_000_000,
                            "ev": now // 1_000_000, "recv": now, "id": 1, "p": "61000.5", "q": "0.01", "m": "0"})
    stats = wait_for(lambda: json.loads(r.get("symbol:stats:BTCUSDT") or "{}").get("garch_sigma_next") and
                     json.loads(r.get("symbol:stats:BTCUSDT")), 30, "symbol:stats with the GARCH fields")  # fmt: skip
    assert stats["garch_sigma_next"] == fit["sigma_next"] and stats["price"] == 61000.5
    # an alert rule on a symbol's GARCH σ fires on a trade of that symbol, to stream:alerts with `symbol`
    rule = AlertRule.from_expression("garch-hi", f"garch_sigma_next >= {fit['sigma_next'] * 0.5!r}", symbol="BTCUSDT")
    r.hset("alerts:rules", rule.id, rule.to_json())
    trade_id = iter(range(2, 10_000))

    def fired():  # one more trade per look: the consumer re-reads the rules every second
        t = time.time_ns()
        r.xadd("stream:ticks", {"v": "1", "sym": "BTCUSDT", "kind": "trade", "ts": t // 1_000_000,
                                "ev": t // 1_000_000, "recv": t, "id": next(trade_id), "p": "61000.5", "q": "0.01",
                                "m": "0"})  # fmt: skip
        got = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("stream:alerts")]
        return [f for f in got if f.get("rule_id") == "garch-hi"]

    alerts = wait_for(fired, 30, "the GARCH symbol alert", interval=0.3)
    assert alerts[0]["symbol"] == "BTCUSDT" and "pair" not in alerts[0]
    assert float(alerts[0]["value"]) == fit["sigma_next"] and alerts[0]["metric"] == "garch_sigma_next"
    r.hdel("alerts:rules", rule.id)
    r.close()
