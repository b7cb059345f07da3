"""The live page's engine labels, z series and alert placement; the Markets metrics table; the PUT body of the
engine form. Plain functions, checked against hand-built frames and an independent loop."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from dashboard import control_api, engine_view
from dashboard.features import SYMBOL_METRICS, symbol_metrics
from dashboard.safe import csv_text
from dashboard.sidebar import shown_order
from qs_common.control import PairSettings

PS = PairSettings(y="ETHUSDT", x="BTCUSDT", window=300, beta_source="kalman", price_source="mid")


def test_engine_label_is_what_the_entry_says_it_was_computed_with() -> None:
    entry = {"window": 120.0, "beta_source": "ols", "price_source": "trade", "zscore": 1.0}
    assert engine_view.engine_label(entry, PS) == "engine, tick level, window 120, β source OLS, trade prices"
    assert engine_view.switching(entry, PS)  # the registry says 300/kalman/mid: not picked up yet
    same = {"window": 300, "beta_source": "kalman", "price_source": "mid"}
    assert not engine_view.switching(same, PS)


def test_an_entry_without_settings_is_labelled_as_configured_not_as_stated() -> None:
    assert engine_view.engine_label({"zscore": 1.0}, PS) == (
        "engine, tick level, configured window 300, β source Kalman, mid prices"
    )
    assert engine_view.engine_label(None, PS).startswith("engine, tick level, configured window 300")
    assert not engine_view.switching({"zscore": 1.0}, PS)
    assert engine_view.engine_settings({"window": float("nan"), "beta_source": 3}) == {}


def test_candle_label_names_the_same_settings() -> None:
    assert engine_view.candle_label("1m", PS) == "candle level, 1m closes, window 300, β source Kalman, close prices"


def test_z_series_keeps_rows_with_a_z_newest_last() -> None:
    rows = pd.DataFrame({"ts": [1, 2, 3, 4, 5], "zscore": [np.nan, 0.5, np.nan, 1.5, 2.5],
                         "spread": [0.0, 0.1, 0.2, 0.3, 0.4]})  # fmt: skip
    z = engine_view.z_series(rows, last=2)
    assert z["open_time"].tolist() == [4, 5] and z["zscore"].tolist() == [1.5, 2.5]
    assert z["spread"].tolist() == [0.3, 0.4]
    assert engine_view.z_series(pd.DataFrame()).empty


def _expected_markers(alerts: pd.DataFrame, pair: str, z: pd.DataFrame) -> list[tuple[int, float]]:
    """Independent: for each alert of the pair inside the series' span, its own value if it is a z alert, else
    the last z at or before its time."""
    out = []
    first, last = int(z["open_time"].iloc[0]), int(z["open_time"].iloc[-1])
    for _, a in alerts.sort_values("ts").iterrows():
        if a["pair"] != pair or not first <= a["ts"] <= last:
            continue
        if a["metric"] == "zscore":
            out.append((int(a["ts"]), float(a["value"])))
            continue
        before = [zz for t, zz in zip(z["open_time"], z["zscore"], strict=True) if t <= a["ts"]]
        out.append((int(a["ts"]), float(before[-1])))
    return out


def test_alert_markers_sit_on_the_engine_z() -> None:
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(1, 50, 400)) + 1_000
    z = pd.DataFrame({"open_time": ts, "spread": rng.normal(size=400), "zscore": rng.normal(size=400)})
    n = 60
    alerts = pd.DataFrame({
        "ts": rng.integers(900, int(ts[-1]) + 100, n),
        "metric": rng.choice(["zscore", "ols_r2", "spread"], n),
        "value": rng.normal(size=n) * 3,
        "pair": rng.choice(["ETHUSDT/BTCUSDT", "SOLUSDT/BTCUSDT"], n),
    })  # fmt: skip
    got = engine_view.alert_markers(alerts, "ETHUSDT/BTCUSDT", z)
    assert got is not None
    expected = _expected_markers(alerts, "ETHUSDT/BTCUSDT", z)
    assert len(expected) > 5
    assert list(zip(got["ts"].tolist(), got["value"].tolist(), strict=True)) == expected
    assert engine_view.alert_markers(alerts.assign(pair="X/Y"), "ETHUSDT/BTCUSDT", z) is None


def test_symbol_metrics_table_and_its_csv() -> None:
    records = {
        "BTCUSDT": {"price": 61600.5, "momentum_bps_per_min": -1.25, "price_z": "0.5", "vol": 1e-4,
                    "vol_annualised": math.inf, "garch_sigma_next": 0.02, "garch_fitted_ms": 1723161600000},
        "=cmd": {"price_z": "not a number"},
        "ETHUSDT": {},
    }  # fmt: skip
    table = symbol_metrics(records)
    assert table.columns.tolist() == ["symbol", *SYMBOL_METRICS]
    assert table["symbol"].tolist() == ["BTCUSDT", "=cmd", "ETHUSDT"]
    btc = table.iloc[0]
    assert (btc["momentum (bps/min)"], btc["price z"], btc["GARCH σ next (%/1m)"]) == (-1.25, 0.5, 0.02)
    assert math.isnan(btc["annualised vol"])  # inf is not a figure to show
    assert table.iloc[1:, 1:].isna().all().all()
    back = pd.read_csv(io.StringIO(csv_text(table)))
    assert back["symbol"].tolist() == ["BTCUSDT", "'=cmd", "ETHUSDT"]  # no formula reaches a spreadsheet
    assert back.loc[0, "GARCH fitted (ms UTC)"] == 1723161600000


def test_engine_form_sends_only_what_changed() -> None:
    wanted = {"window": 120, "beta_source": "kalman", "delta": PS.delta, "obs_noise": 2.0, "z_entry": 2.0,
              "z_exit": 0.5, "price_source": "mid"}  # fmt: skip
    assert control_api.changes(PS, wanted) == {"window": 120, "obs_noise": 2.0}
    assert control_api.changes(PS, {**PS.model_dump(), "nope": 1}) == {}
    assert set(control_api.REGRESSION_OF) == set(PairSettings.model_fields["beta_source"].annotation.__args__)


def test_symbols_are_shown_in_the_configured_order_then_the_added_ones() -> None:
    active = ("ADAUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT")  # the registry's, sorted
    assert shown_order(active, ("ETHUSDT", "BTCUSDT", "XRPUSDT")) == ("ETHUSDT", "BTCUSDT", "ADAUSDT", "SOLUSDT")
    assert shown_order((), ("ETHUSDT", "BTCUSDT")) == ("ETHUSDT", "BTCUSDT")
