"""The Research and Backtest pages under Streamlit's AppTest, against a real redis-server and the real worker
API (`python -m worker --role candles`) over a DuckDB file seeded with four symbols' 1m candles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from streamlit.testing.v1 import AppTest

from qs_common import control
from tests.integration.browser_util import WorkerApi, app_test_env, seed_live, start_redis
from tests.research_candles import SYMBOLS, candle_rows

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[redis.Redis, WorkerApi]]:
    candles = {s: candle_rows(s) for s in SYMBOLS}
    for url in start_redis():
        with WorkerApi(candles, url, {"SCAN_EVERY_S": "0", "GARCH_EVERY_S": "0"}) as api, app_test_env(url, api.url):
            r = redis.Redis.from_url(url, decode_responses=True)
            seed_live(r, {"BTCUSDT": candles["BTCUSDT"], "ETHUSDT": candles["ETHUSDT"]})
            yield r, api


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{name}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    parts += [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def button(at: AppTest, label: str):  # noqa: ANN201
    return next(b for b in at.button if b.label == label)


def test_research_page_runs_a_scan_ranks_it_and_sends_a_pair_to_the_backtest(services) -> None:
    at = page("research.py")
    assert "No scan has finished yet" in texts(at)
    assert sorted(at.multiselect(key="scan_symbols").value) == sorted(SYMBOLS)
    button(at, "Run scan now").click().run()
    assert not at.exception, [e.value for e in at.exception]
    frame = at.dataframe[0].value
    # the filter (EG p ≤ 0.05) keeps only the cointegrated pair
    assert len(frame) == 1 and {frame.iloc[0]["y"], frame.iloc[0]["x"]} == {"ETHUSDT", "BTCUSDT"}
    assert frame.iloc[0]["EG p (better dir.)"] < 0.01
    assert "1 of 6 pairs pass the filters" in texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Hurst exponent (spread)"]) < 0.5  # the AR(1) spread mean-reverts
    at.number_input(key="scan_max_p").set_value(1.0).run()
    assert len(at.dataframe[0].value) == 6
    button(at, "Run Johansen").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.label == "Rank (trace test, 95 %)" for m in at.metric)
    at.number_input(key="scan_max_p").set_value(0.05).run()
    button(at, "Backtest this pair").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["backtest_pair"]["from_scan"] >= 1
    assert "Backtest" in at.title[0].value


def test_backtest_page_runs_on_stored_candles_and_shows_the_sweep(services) -> None:
    at = page("backtest.py")
    assert at.selectbox(key="bt_beta").options == ["rolling OLS", "Kalman filter", "rolling Huber"]
    at.selectbox(key="bt_y").set_value("ETHUSDT")
    at.selectbox(key="bt_x").set_value("BTCUSDT")
    at.selectbox(key="bt_iv").set_value("1m").run()
    button(at, "Run backtest").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Periods per year"] == "525,960"
    assert int(metrics["Trades"]) > 0
    shown = texts(at)
    assert "Parameter sweep (in-sample)" in shown and "The star marks the in" in shown and "Walk-forward" in shown
    assert len(at.dataframe[1].value) == 2  # in-sample and out-of-sample rows
    assert "β rolling OLS" in shown
    at.selectbox(key="bt_beta").set_value("Kalman filter")  # inside the form: sent with the submit
    button(at, "Run backtest").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["bt_result"][0]["params"]["beta_source"] == "kalman"  # the worker ran Kalman β
    assert any("β Kalman filter" in c.value for c in at.caption)


def test_backtest_upload_with_a_bad_row_names_it(services) -> None:
    from dashboard.components.backtest_views import parse_rows

    with pytest.raises(ValueError, match=r"row 2, column y: '-1' must be a finite number > 0"):
        parse_rows("time,x,y\n1,2,3\n2,2,-1\n")
    with pytest.raises(ValueError, match="header: missing column"):
        parse_rows("time,close\n1,2\n")
    assert parse_rows("time,x,y\n1723075200000,60000.5,2600.25\n") == [[1723075200000.0, 60000.5, 2600.25]]
    from dashboard.components.backtest_costs import parse_spreads

    assert parse_spreads("time,x,y\n1,2,3\n") == {}
    assert parse_spreads("time,x,y,spread_bps_y\n1,2,3,1.5\n2,2,3,\n") == {"spread_bps_y": [1.5, None]}
    with pytest.raises(ValueError, match=r"row 2, column spread_bps_x: '-1' must be a finite number >= 0"):
        parse_spreads("time,x,y,spread_bps_x\n1,2,3,1\n2,2,3,-1\n")


def test_adf_page_shows_engle_granger_both_directions_beside_plain_adf(services) -> None:
    at = page("adf.py")
    at.radio(key="adf_scope").set_value("every candle shown").run()  # the rolling window is short for a verdict
    at.button(key="adf_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at)
    assert "Engle–Granger: cointegrated at 5 %" in shown and "Plain ADF" in shown, shown[-600:]
    eg = next(d.value for d in at.dataframe if "EG p-value (MacKinnon)" in d.value.columns)
    assert list(eg["direction"]) == ["ETHUSDT on BTCUSDT", "BTCUSDT on ETHUSDT"]
    assert any(m.label == "ADF p-value" for m in at.metric)


def test_markets_page_shows_and_refits_garch(services) -> None:
    at = page("markets.py")
    assert "No GARCH fit stored yet" in texts(at)
    at.button(key="garch_refit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "sigma_next" in d.value.columns)
    assert sorted(table["symbol"]) == ["BTCUSDT", "ETHUSDT"] and (table["sigma_next"] > 0).all()


def test_monitor_live_adds_the_scan_pair_and_opens_the_live_page(services) -> None:
    r, _ = services
    kw = r.connection_pool.connection_kwargs
    raw = redis.Redis(host=kw["host"], port=kw["port"])  # the registry module reads bytes
    before = control.active_pairs(raw)
    for pid in before:
        control.remove_pair(raw, pid)  # so the scan's pair is new to the worker, whichever direction it takes
    try:
        at = page("research.py")
        if "No scan has finished yet" in texts(at):
            button(at, "Run scan now").click().run()
        row = at.dataframe[0].value.iloc[0]
        pid = f"{row['y']}/{row['x']}"
        button(at, "Monitor live").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert list(control.active_pairs(raw)) == [pid]  # POST /pairs through the worker API
        assert at.title[0].value.startswith(pid)  # the live page, on that pair
    finally:
        for pid in control.active_pairs(raw):
            control.remove_pair(raw, pid)
        for ps in before.values():
            control.put_pair(raw, ps)
