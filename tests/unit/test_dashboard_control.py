"""The dashboard as the live system's control panel (issue 10), under Streamlit's AppTest.

Real parts: a redis-server, the real worker API (`python -m worker --role candles`, the DuckDB owner with the
control endpoints) whose venue check asks a local Binance REST server (`exchangeInfo`: BTCUSDT, ETHUSDT,
SOLUSDT trading, LUNAUSDT in BREAK), and ACCESS_TOKEN on both sides, so every change the sidebar makes is a
write the API accepts only with the dashboard's bearer token. What the pages show is checked against what the
registry, the analytics stream and the status records hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import streamlit as st
from streamlit.testing.v1 import AppTest

from qs_common import control, keys
from tests.integration.browser_util import WorkerApi, app_test_env, kline_candles, seed_live, start_redis
from tests.integration.klines_server import KlinesServer

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TOKEN = "dashboard-control-token"
LISTING = {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "SOLUSDT": "TRADING", "LUNAUSDT": "BREAK"}
PAIR = "ETHUSDT/BTCUSDT"


@pytest.fixture(scope="module")
def r() -> Iterator[redis.Redis]:
    candles = kline_candles()
    with KlinesServer(book={}, listing=LISTING) as rest:
        for url in start_redis():
            env = {"ACCESS_TOKEN": TOKEN, "BINANCE_REST_URL": rest.url, "SYMBOLS": "BTCUSDT,ETHUSDT",
                   "PAIRS": PAIR}  # fmt: skip
            with WorkerApi(candles, url, env) as api, app_test_env(url, api.url):
                os.environ["ACCESS_TOKEN"] = TOKEN
                st.cache_resource.clear()
                client = redis.Redis.from_url(url, decode_responses=True)
                seed_live(client, candles)
                try:
                    yield client
                finally:
                    os.environ.pop("ACCESS_TOKEN", None)


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["_access_ok"] = True  # signed in (the token gate has its own tests)
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(text: str) -> str:
    """Text shown through `safe.md` read back: its escapes and word joiners removed."""
    return text.replace("\\", "").replace("\u2060", "")


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.title, *at.error, *at.warning, *at.info, *at.success, *at.subheader]
    return plain("\n".join(str(p.value) for p in parts))


def said(items: Any) -> str:
    return plain(" ".join(str(e.value) for e in items))


def widget(items: Any, prefix: str) -> Any:
    """The widget whose key starts with `prefix` (the engine form's keys carry the pair and registry version)."""
    found = [w for w in items if str(w.key or "").startswith(prefix)]
    assert len(found) == 1, [w.key for w in items]
    return found[0]


def pairs(r: redis.Redis) -> dict[str, control.PairSettings]:
    """The registry's pairs (read as bytes, as the registry module reads them)."""
    kw = r.connection_pool.connection_kwargs
    return control.active_pairs(redis.Redis(host=kw["host"], port=kw["port"]))


def test_sidebar_offers_the_registry_pairs_and_their_settings(r: redis.Redis) -> None:
    at = open_app()
    assert at.selectbox(key="pair").options == [PAIR]
    ps = pairs(r)[PAIR]
    assert widget(at.number_input, "eng_window:").value == ps.window
    assert widget(at.selectbox, "eng_beta_source:").value == ps.beta_source
    assert "Active symbols: BTCUSDT, ETHUSDT" in texts(at)


def test_add_symbol_through_the_api_and_the_venue_refusal_as_text(r: redis.Redis) -> None:
    at = open_app()
    at.text_input(key="new_symbol").set_value("lunausdt")
    at.button(key="add_symbol_btn").click().run()
    assert not at.exception
    refusal = said(at.error)
    assert "(HTTP 422)" in refusal and "LUNAUSDT" in refusal
    assert "LUNAUSDT" not in control.active_symbols(r)
    at.text_input(key="new_symbol").set_value("[x](http://evil.example)")
    at.button(key="add_symbol_btn").click().run()
    assert "(HTTP 400)" in said(at.error)
    assert "\\[X\\]\\(HTTP" in at.error[0].value  # the API's message quotes the input: shown as text, never a link
    at.text_input(key="new_symbol").set_value("solusdt")
    at.button(key="add_symbol_btn").click().run()
    assert "SOLUSDT is active" in said(at.success)
    assert "SOLUSDT" in control.active_symbols(r)
    assert at.text_input(key="new_symbol").value == ""


def test_add_pair_change_its_window_remove_it(r: redis.Redis) -> None:
    control.add_symbol(r, "SOLUSDT")
    at = open_app()
    at.selectbox(key="new_y").set_value("SOLUSDT")
    at.selectbox(key="new_x").set_value("BTCUSDT")
    at.button(key="add_pair_btn").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "SOLUSDT/BTCUSDT" in pairs(r)
    assert at.selectbox(key="pair").value == "SOLUSDT/BTCUSDT"  # the new pair is shown at once
    assert at.title[0].value.startswith("SOLUSDT/BTCUSDT")
    # the engine settings: a partial PUT of what changed
    widget(at.number_input, "eng_window:").set_value(120)
    widget(at.selectbox, "eng_beta_source:").set_value("kalman")
    at.button(key="apply_engine").click().run()
    stored = pairs(r)["SOLUSDT/BTCUSDT"]
    assert (stored.window, stored.beta_source, stored.delta) == (120, "kalman", pairs(r)[PAIR].delta)
    assert "window 300 → 120" in said(at.success)
    assert widget(at.number_input, "eng_window:").value == 120  # the form shows the stored settings
    # a leg still in use cannot go: the API's 409 message, as text
    at.selectbox(key="drop_symbol").set_value("SOLUSDT")
    at.button(key="drop_symbol_btn").click().run()
    refusal = said(at.error)
    assert "(HTTP 409)" in refusal and "remove the pair first" in refusal
    at.button(key="drop_pair_btn").click().run()
    assert "SOLUSDT/BTCUSDT" not in pairs(r)
    assert at.selectbox(key="pair").value == PAIR
    at.selectbox(key="drop_symbol").set_value("SOLUSDT")
    at.button(key="drop_symbol_btn").click().run()
    assert "SOLUSDT" not in control.active_symbols(r)


def test_bad_settings_are_refused_with_the_api_message(r: redis.Redis) -> None:
    at = open_app()
    widget(at.number_input, "eng_z_exit:").set_value(3.0)  # above the entry band
    at.button(key="apply_engine").click().run()
    refusal = said(at.error)
    assert "(HTTP 400)" in refusal and "z_exit" in refusal
    assert pairs(r)[PAIR].z_exit == 0.5


def test_live_page_labels_the_engine_and_draws_alerts_on_its_z(r: redis.Redis) -> None:
    last = r.xrevrange(keys.ANALYTICS_STREAM, "+", "-", count=1)[0][1]
    ts = int(last["ts"]) + 100
    r.xadd(keys.ANALYTICS_STREAM, {"v": "1", "pair": PAIR, "ts": ts, "y": "2660", "x": "61600", "zscore": 2.5,
                                   "spread": 0.3, "hedge_beta": 0.0433, "ols_r2": 0.97, "window": 300,
                                   "beta_source": "ols", "price_source": "trade"})  # fmt: skip
    r.xadd(keys.ALERTS_STREAM, {"rule_id": "z", "rule": "{}", "metric": "zscore", "value": 2.5, "pair": PAIR,
                                "ts": ts})  # fmt: skip
    r.xadd(keys.ALERTS_STREAM, {"rule_id": "r2", "rule": "{}", "metric": "ols_r2", "value": 0.97, "pair": PAIR,
                                "ts": ts - 150})  # fmt: skip
    at = open_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["z-score (engine)"] == "2.500" and metrics["β (engine)"] == "0.04330"
    assert "engine, tick level, window 300, β source OLS, trade prices" in texts(at)
    z_chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                   if "Spread and z-score (engine" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    markers = next(d for d in z_chart["data"] if d.get("name") == "alert")
    # the z alert sits at its own value, the R² alert at the engine's z as of its time (1.25 in the seeded rows)
    assert sorted(_values(markers["y"])) == [1.25, 2.5]


def _values(v: Any) -> list[float]:
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def test_markets_lists_engine_metrics_of_every_active_symbol_with_csv(r: redis.Redis) -> None:
    stats = {"price": 61600.5, "n": 300, "momentum_bps_per_min": -1.25, "price_z": 0.5, "vol": 1.2e-4,
             "vol_annualised": 0.55}  # fmt: skip
    r.set(keys.symbol_stats_key("BTCUSDT"), json.dumps({**stats, "garch_sigma_next": 0.01}))
    r.set(keys.garch_key("BTCUSDT"), json.dumps({"garch_sigma_next": 0.02, "garch_sigma_now": 0.03,
                                                 "garch_sigma_next_ann": 14.5, "garch_fitted_ms": 1723161600000}))
    at = open_app("markets.py")
    table = next(d.value for d in at.dataframe if "momentum (bps/min)" in d.value)
    assert list(table["symbol"]) == ["ETHUSDT", "BTCUSDT"]  # in SYMBOLS' order
    btc = table.set_index("symbol").loc["BTCUSDT"]
    assert (btc["momentum (bps/min)"], btc["price z"], btc["annualised vol"]) == (-1.25, 0.5, 0.55)
    assert btc["GARCH σ next (%/1m)"] == 0.02  # the fit's own key is newer than the copy in symbol:stats
    assert btc["GARCH fitted"] == "2024-08-09 00:00:00 UTC"
    assert pd.isna(table.set_index("symbol").loc["ETHUSDT", "price z"])  # not computed: empty, not 0
    assert "Download per-symbol metrics (CSV)" in [b.proto.label for b in at.get("download_button")]


def test_system_page_shows_webhook_delivery_and_the_registry(r: redis.Redis) -> None:
    r.set(keys.status_key("worker-webhooks"), json.dumps({"process": "worker-webhooks", "updated_ms": 1,
          "state": "running", "in_hand": 0, "retrying": 1, "delivered": 7, "failures": 3, "dropped": 1,
          "last_error": "hook.example: HTTP 500"}))  # fmt: skip
    at = open_app("system.py")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["delivered"], metrics["failures"], metrics["dropped"], metrics["retrying"]) == ("7", "3", "1", "1")
    body = texts(at)
    assert "Last delivery error: hook.example: HTTP 500" in body
    version = control.version(r)
    assert f"Version {version} · 2 active symbol(s): BTCUSDT, ETHUSDT" in body
    registry = next(d.value for d in at.dataframe if "pair" in d.value and "window" in d.value)
    assert list(registry["pair"]) == [PAIR]
