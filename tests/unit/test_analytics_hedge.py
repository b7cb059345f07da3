"""The dashboard's pair series and the live engine are one definition: same β, α, fair value, spread, z-score
and correlation, float for float, whichever β source. For Kalman that is the state after its update (the
dashboard used the state before it until issue 13, so its spread was the engine's prediction error `kalman_e`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.pair_calc import PairCalc
from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.hedge import KINDS, HedgeSeries

SOURCE = {"OLS": "ols", "Kalman": "kalman", "Huber": "huber", "Theil-Sen": "theilsen"}
KALMAN = {"delta": 1e-7, "obs_noise": 0.5, "init_cov": 1.0}
ENGINE_NAMES = ("hedge_beta", "hedge_alpha", "fair_value", "spread", "zscore", "corr")


def legs(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    x = 60_000 + np.cumsum(rng.normal(0, 20, n))
    return x, 0.05 * x + 100 + rng.normal(0, 2, n)


@pytest.mark.parametrize("kind", KINDS)
def test_dashboard_series_is_the_engine_series(kind: str) -> None:
    w = 30
    x, y = legs()
    cfg = PairConfig(window=w, beta_source=SOURCE[kind], theilsen=kind == "Theil-Sen", huber_every_n=5,
                     huber_every_ms=None, theilsen_every_n=5, **KALMAN)  # fmt: skip
    eng = PairEngine(cfg)
    ts = np.arange(len(x), dtype="int64") * 60_000
    out = PairCalc(kind, w, KALMAN).run(pd.DataFrame({"open_time": ts, "y": y, "x": x}), None)
    compared = 0
    for t in range(len(x)):
        m = eng.update(int(ts[t]), float(y[t]), float(x[t]))
        row = out.iloc[t]
        for name, col in zip(ENGINE_NAMES, ("beta", "alpha", "fair", "spread", "zscore", "corr"), strict=True):
            if name in m:
                assert row[col] == m[name], (kind, t, name)
                compared += 1
            else:
                assert math.isnan(row[col]), (kind, t, name)
    assert compared > 100


def test_kalman_spread_is_the_residual_of_the_updated_state() -> None:
    x, y = legs(40)
    s = HedgeSeries("Kalman", 10, KALMAN)
    eng = PairEngine(PairConfig(window=10, beta_source="kalman", **KALMAN))
    for t in range(40):
        row = s.step(t, float(y[t]), float(x[t]))
        m = eng.update(t, float(y[t]), float(x[t]))
        assert row.spread == y[t] - m["kalman_beta"] * x[t] - m["kalman_alpha"]
        if t > 0:  # the prediction error (before the update) is another number
            assert row.spread != m["kalman_e"]


def test_warm_up_and_unknown_kind() -> None:
    assert HedgeSeries("Kalman", 30).needs_fit() == 1  # warm from the first observation, like the engine
    assert HedgeSeries("OLS", 30).needs() == 30 + 30
    with pytest.raises(ValueError, match="unknown regression 'LASSO'"):
        HedgeSeries("LASSO", 30)
