"""The dashboard's pages and widgets under Streamlit's AppTest, against a real redis-server.

The worker API is the real one (`python -m worker --role candles`) over a DuckDB file seeded with the official
BTCUSDT klines (and an ETHUSDT series that follows them), so what the pages show can be checked against the fixture.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import streamlit as st
from streamlit.testing.v1 import AppTest

from qs_common import control, keys
from tests.integration.browser_util import WorkerApi, app_test_env, kline_candles, seed_live, start_redis

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
CSV = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
TIMEOUT = 30


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[redis.Redis, WorkerApi]]:
    candles = kline_candles()
    for url in start_redis():
        with WorkerApi(candles, url) as api, app_test_env(url, api.url):
            r = redis.Redis.from_url(url, decode_responses=True)
            seed_live(r, candles)
            yield r, api


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(f"app_pages/{page}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def values(v: object) -> list[object]:
    """A Plotly trace array: a list, or Plotly's binary form {"dtype", "bdata"} (base64)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)  # type: ignore[call-overload]


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def test_live_pair_shows_prices_book_and_charts(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    at = run_page()
    metrics = {m.label: m.value for m in at.metric}
    forming_btc = json.loads(r.get(keys.forming_candle_key("BTCUSDT", "1m")))
    assert metrics["BTCUSDT last"] == f"{float(forming_btc['close']):,.2f}"
    assert metrics["z-score (engine)"] == "1.250"
    bids = [m.value for m in at.metric if m.label.endswith(" bid")]
    expected = [f"{float(json.loads(r.get(keys.latest_book_key(s)))['bid']):,.2f}" for s in ("ETHUSDT", "BTCUSDT")]
    assert bids == expected
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # two candle charts, legs, spread/z, hedge ratio, correlation
    candle = json.loads(charts[0].proto.spec)
    opens = values(candle["data"][0]["open"])
    assert len(opens) == 300  # "Candles shown" default; the forming candle is the last
    assert "Stats" in texts(at)


@contextlib.contextmanager
def pair_changed(r: redis.Redis, **changes: object) -> Iterator[None]:
    """The pair's registry settings changed (as the API or another tab would), restored after."""
    before = control.get_pair(r, "ETHUSDT/BTCUSDT")
    assert before is not None
    control.update_pair(r, "ETHUSDT/BTCUSDT", changes)
    try:
        yield
    finally:
        control.put_pair(r, before)


def test_controls_change_what_is_drawn(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    with pair_changed(r, beta_source="huber"):
        at = run_page()
        at.select_slider(key="candles").set_value(120).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(values(spec["data"][0]["open"])) == 120
    sources = [str(v) for d in at.dataframe if "source" in d.value for v in d.value["source"]]
    assert "candle level, 1m closes, window 300, β source Huber, close prices" in sources  # follows the pair
    utc_last = values(spec["data"][0]["x"])[-1]
    at.selectbox(key="tz").set_value("Asia/Tokyo").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    tokyo_last = values(spec["data"][0]["x"])[-1]
    shift = pd.Timestamp(str(tokyo_last)) - pd.Timestamp(str(utc_last))
    assert shift == pd.Timedelta(hours=9)
    assert "Asia/Tokyo" in spec["layout"]["xaxis"]["title"]["text"]


def test_window_larger_than_data_says_how_many_points_are_missing(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    with pair_changed(r, window=5_000):
        at = run_page()
        at.select_slider(key="candles").set_value(60).run()
    assert not at.exception
    assert "needs" in texts(at) and "more points" in texts(at)


def test_seam_has_no_duplicate_and_redis_wins(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    at = run_page()
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)  # x leg: BTCUSDT
    xs = values(spec["data"][0]["x"])
    assert len(xs) == len(set(xs))
    assert values(spec["data"][0]["close"])[-1] == float(
        json.loads(r.get(keys.forming_candle_key("BTCUSDT", "1m")))["close"]
    )


def test_markets_page(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("markets.py")
    table = at.dataframe[0].value
    assert sorted(table["symbol"]) == ["BTCUSDT", "ETHUSDT"]
    assert len(at.get("plotly_chart")) == 1  # heatmap


def test_adf_button_runs_the_test(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("adf.py")
    at.button(key="adf_run").click().run()
    assert not at.exception
    assert any(m.label == "ADF statistic" for m in at.metric)
    assert "stationary" in texts(at).lower()


def test_system_page(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("system.py")
    body = texts(at)
    assert "Feed connected" in body
    assert "Gaps (1 most recent)" in body
    assert any(m.label == "Frames/s" and m.value == "12.5" for m in at.metric)


def test_system_page_when_feed_is_down(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    saved = r.get(keys.status_key("ingest"))
    r.delete(keys.status_key("ingest"))
    try:
        at = run_page("system.py")
        assert "The feed is down" in texts(at)
    finally:
        r.set(keys.status_key("ingest"), saved)


def test_history_page_and_downloads(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("history.py")
    assert len(at.get("plotly_chart")) == 1
    assert len(at.dataframe[0].value) == 1440
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download OHLC (CSV)", "Download analytics (CSV)"]


def test_upload_single_file_and_import(services: tuple[redis.Redis, WorkerApi]) -> None:
    _, api = services
    at = run_page("upload.py")
    at.file_uploader(key="upload_files").upload("BTCUSDT-1m.csv", (CSV / "binance_ms_noheader.csv").read_bytes()).run()
    assert not at.exception
    assert "30 rows" in texts(at)
    at.button(key="up_import").click().run()
    # the seeded history already has these minutes: the import keeps what is stored
    assert "Imported 0 1m candles of BTCUSDT. 30 were already stored and kept as they are." in texts(at)
    at.text_input(key="up_symbol").set_value("BTCTEST").run()
    at.button(key="up_import").click().run()
    assert "Imported 30 1m candles of BTCTEST" in texts(at)
    stored = api.candles("BTCTEST", 0, 2**62)
    assert len(stored) == 30 and {c["source"] for c in stored} == {"import"}
    first = (CSV / "binance_ms_noheader.csv").read_text().splitlines()[0].split(",")
    assert (stored[0]["open_time"], stored[0]["open"], stored[0]["high"]) == (int(first[0]), first[1], first[2])


def test_upload_pair_from_symbol_column(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("upload.py")
    at.file_uploader(key="upload_files").upload("pair.csv", (CSV / "pair_symbol_column.csv").read_bytes()).run()
    assert not at.exception
    assert "symbols BTCUSDT, ETHUSDT" in texts(at)
    assert len(at.get("plotly_chart")) >= 4  # legs, spread/z, hedge ratio, candles
    assert "ADF on the whole spread" in texts(at)


def test_upload_bad_file_names_row_and_column_and_stores_nothing(services: tuple[redis.Redis, WorkerApi]) -> None:
    _, api = services
    before = api.stored()
    at = run_page("upload.py")
    at.file_uploader(key="upload_files").upload("bad.csv", (CSV / "bad_number.csv").read_bytes()).run()
    assert not at.exception
    assert "row 5, column high" in at.error[0].value
    assert "up_import" not in [b.key for b in at.button]  # no import button offered
    assert api.stored() == before


def test_alert_rules_create_edit_delete(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    r.delete(keys.ALERT_RULES)
    at = run_page("alerts.py")
    at.text_input(key="rule_expr").set_value("z >> 2")
    at.form_submit_button[0].click().run()
    assert "Rule not saved" in at.error[0].value
    assert r.hlen(keys.ALERT_RULES) == 0
    at.text_input(key="rule_expr").set_value("|z| >= 2.5")
    at.form_submit_button[0].click().run()
    assert not at.exception
    stored = r.hgetall(keys.ALERT_RULES)
    assert len(stored) == 1
    rid, body = next(iter(stored.items()))
    rule = json.loads(body)
    assert rule["threshold"] == 2.5 and rule["metric"] == "zscore" and rule["pair"] == "ETHUSDT/BTCUSDT"
    assert rule["abs_value"] is True and rule["op"] == ">=" and rule["id"] == rid

    at = run_page("alerts.py")
    edited = {**rule, "threshold": 3.0}
    at.text_area(key=f"rule_edit_text_{rid}").set_value(json.dumps(edited))
    at.button(key="rule_save").click().run()
    assert json.loads(r.hget(keys.ALERT_RULES, rid))["threshold"] == 3.0

    at.text_area(key=f"rule_edit_text_{rid}").set_value(json.dumps({**rule, "metric": "nonsense"}))
    at.button(key="rule_save").click().run()
    assert "Rule not saved" in at.error[0].value
    assert json.loads(r.hget(keys.ALERT_RULES, rid))["threshold"] == 3.0

    at.button(key="rule_delete").click().run()
    assert r.hlen(keys.ALERT_RULES) == 0


def test_alert_rule_on_a_symbol_metric(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    r.delete(keys.ALERT_RULES)
    at = run_page("alerts.py")
    at.radio(key="rule_kind").set_value("Symbol metric (price, momentum, volatility, GARCH)").run()
    at.selectbox(key="rule_symbol").set_value("BTCUSDT")
    at.text_input(key="rule_expr_symbol").set_value("zscore > 2")  # a pair metric: refused, named
    at.form_submit_button[0].click().run()
    assert "Rule not saved" in at.error[0].value and "unknown symbol metric" in at.error[0].value
    at.text_input(key="rule_expr_symbol").set_value("garch_sigma_next_ann >= 90")
    at.text_input(key="rule_name").set_value("<b>vol</b> *spike*")  # user text stays inert
    at.form_submit_button[0].click().run()
    assert not at.exception
    rule = json.loads(next(iter(r.hgetall(keys.ALERT_RULES).values())))
    assert (rule["symbol"], rule["metric"], rule["op"], rule["threshold"]) == ("BTCUSDT", "garch_sigma_next_ann", ">=",
                                                                               90.0)  # fmt: skip
    assert rule["name"] == "<b>vol</b> *spike*"
    r.delete(keys.ALERT_RULES)
    from dashboard.alerts_feed import describe

    row = pd.Series({"pair": float("nan"), "symbol": "BTCUSDT", "metric": "garch_sigma_next_ann", "value": 95.0})
    assert describe(row) == "BTCUSDT: garch_sigma_next_ann = 95"  # a symbol alert's toast names the symbol


def test_alert_history_and_toast(services: tuple[redis.Redis, WorkerApi]) -> None:
    r, _ = services
    at = run_page("alerts.py")
    assert "No alert has fired yet." in texts(at)
    r.xadd(
        keys.ALERTS_STREAM,
        {
            "rule_id": "abc",
            "rule": "{}",
            "metric": "zscore",
            "value": "2.7",
            "pair": "ETHUSDT/BTCUSDT",
            "ts": "1723161599000",
        },
    )
    at.run()
    assert any("zscore" in t.value for t in at.toast)
    assert len(at.dataframe[-1].value) == 1


def test_redis_down_gives_a_plain_message(services: tuple[redis.Redis, WorkerApi]) -> None:
    _, api = services
    old = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = "redis://127.0.0.1:1/0"
    st.cache_resource.clear()
    try:
        for page in (None, "system.py", "alerts.py", "markets.py"):
            at = run_page(page)
            assert "is not answering" in texts(at)
    finally:
        os.environ["REDIS_URL"] = old
        st.cache_resource.clear()


def test_system_page_shows_robustness_counters_and_non_utf8_dead_letters(
    services: tuple[redis.Redis, WorkerApi],
) -> None:
    r, _ = services
    raw = redis.Redis.from_url(os.environ["REDIS_URL"])  # bytes in, as ingest writes them
    raw.xadd(keys.DEAD_LETTER_STREAM, {"reason": "bad \xff".encode("latin-1"), "raw": b'{"s":"\xff\xfe\x80"}',
                                       "recv": "1", "source": "worker-candles"})
    # worker-analytics: the running worker (--role candles) rewrites its own worker-candles record every second
    saved = {p: r.get(keys.status_key(p)) for p in ("ingest", "worker-analytics", "worker-backfill")}
    ingest = json.loads(saved["ingest"] or "{}") | {
        "dead_letters": 7, "dead_letter_reasons": {"[x](http://evil.example)": 5, "skew": 2}, "redis_rewinds": 1}
    analytics = {"process": "worker-analytics", "updated_ms": 1, "state": "running", "quarantined": 3,
                 "last_quarantine": "1-0: Int128"}
    backfill = json.loads(saved["worker-backfill"] or "{}") | {"kline_checked": 42, "kline_mismatches": 2,
                                                              "kline_repaired": 2}
    r.set(keys.status_key("ingest"), json.dumps(ingest))
    r.set(keys.status_key("worker-analytics"), json.dumps(analytics))
    r.set(keys.status_key("worker-backfill"), json.dumps(backfill))
    try:
        at = run_page("system.py")
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Dead letters"] == "7"
        assert (metrics["1m candles checked against klines"], metrics["Kline mismatches"],
                metrics["Repaired from REST"]) == ("42", "2", "2")
        frames = [d.value for d in at.dataframe]
        quarantine = next(f for f in frames if "quarantined" in f.columns)
        assert quarantine.set_index("process").loc["worker-analytics", "quarantined"] == 3
        reasons = next(f for f in frames if "dead-letter reason" in f.columns)
        assert dict(zip(reasons["dead-letter reason"], reasons["count"], strict=True))["skew"] == 2
        dead = next(f for f in frames if "raw" in f.columns)
        assert dead["raw"].iloc[0] == '{"s":"\\xff\\xfe\\x80"}'  # shown escaped, not a UnicodeDecodeError
        assert dead["source"].iloc[0] == "worker-candles"
        assert "went back in time" in texts(at) and "1 time(s)" in texts(at)
    finally:
        raw.delete(keys.DEAD_LETTER_STREAM)
        for p, v in saved.items():
            if v is None:
                r.delete(keys.status_key(p))
            else:
                r.set(keys.status_key(p), v)


def test_login_gate(services: tuple[redis.Redis, WorkerApi]) -> None:
    os.environ["ACCESS_TOKEN"] = "s3cret-token"
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not at.exception
        assert [t.label for t in at.text_input] == ["Access token"]
        assert not at.sidebar.selectbox and not at.metric  # nothing of the app before the token
        at.text_input(key="access_token_input").set_value("wrong")  # a form: the value goes with the submit
        at.button[0].click().run()
        assert "That is not the access token." in texts(at) and not at.metric
        at.text_input(key="access_token_input").set_value("s3cret-token")
        at.button[0].click().run()
        assert not at.exception
        assert at.sidebar.selectbox and any(m.label == "BTCUSDT last" for m in at.metric)
    finally:
        os.environ.pop("ACCESS_TOKEN", None)
        st.cache_resource.clear()


def test_user_text_is_escaped_where_streamlit_renders_markdown(services: tuple[redis.Redis, WorkerApi]) -> None:
    at = run_page("upload.py")
    rows = [f"{s},{1723154400000 + 60_000 * i},1,2,0.5,1.5,1" for s in ("[X](HTTP://EVIL.EXAMPLE)", "AB")
            for i in range(3)]
    body = "\n".join(["symbol,time,open,high,low,close,volume", *rows]).encode()
    at.file_uploader(key="upload_files").upload("evil.csv", body).run()
    assert not at.exception
    shown = [s.value for s in at.success] + [s.value for s in at.subheader]
    assert any(r"\[X\]\(HTTP\:" + "\u2060" + r"//EVIL\.EXAMPLE\)" in v for v in shown)
    assert not any("[X](HTTP" in v for v in shown)
