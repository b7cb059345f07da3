"""PairAligner and PairEngine: as-of pairing, metric names, warm-up (`needs`), schedules, time windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from pydantic import ValidationError

from qs_analytics.align import PairAligner, PairObservation
from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.names import METRIC_NAMES


def test_aligner_pairs_each_update_with_the_other_legs_last_price():
    al = PairAligner("ethusdt", "BTCUSDT")
    assert al.pair == "ETHUSDT/BTCUSDT"
    assert al.update("BTCUSDT", 1, 60_000.0) is None
    assert al.update("SOLUSDT", 2, 150.0) is None
    assert al.update("ETHUSDT", 3, 2_600.0) == PairObservation(3, 2_600.0, 60_000.0)
    assert al.update("ETHUSDT", 4, 2_601.0) == PairObservation(4, 2_601.0, 60_000.0)
    assert al.update("btcusdt", 5, 60_010.0) == PairObservation(5, 2_601.0, 60_010.0)
    with pytest.raises(ValueError):
        PairAligner("BTCUSDT", "btcusdt")


def series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 60_000 + np.cumsum(rng.normal(0, 5, n))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.9 * s[t - 1] + rng.normal(0, 0.3)
    return x, 0.05 * x + 3 + s


def test_metrics_appear_exactly_when_needs_says_so():
    cfg = PairConfig(window=30, huber_every_n=10, huber_every_ms=None, theilsen=True, theilsen_every_n=50,
                     half_life_every_n=5)  # theilsen: off by default since the defaults are the live ones
    eng = PairEngine(cfg)
    x, y = series(200)
    for t in range(200):
        before = eng.needs()
        m = eng.update(t * 100, float(y[t]), float(x[t]))
        assert set(m) <= set(METRIC_NAMES)
        for name, left in before.items():
            if name == "adf_pvalue":  # the caller runs ADF: `needs` says when `adf_due` can become true
                assert eng.adf_due(t * 100) == (left <= 1)
                continue
            # `left` observations still needed before this update: present iff that was at most 1
            assert (name in m) == (left <= 1), (t, name, left)
    assert eng.needs() == dict.fromkeys(eng.needs(), 0)


def test_engine_values_match_independent_references():
    cfg = PairConfig(window=50, beta_source="ols", theilsen=False)
    eng = PairEngine(cfg)
    x, y = series(300, seed=4)
    spreads = []
    for t in range(300):
        m = eng.update(t * 250, float(y[t]), float(x[t]))
        if t >= 49:
            xs, ys = x[t - 49 : t + 1], y[t - 49 : t + 1]
            r = sm.OLS(ys - ys.mean(), sm.add_constant(xs - xs.mean())).fit()
            assert m["ols_beta"] == pytest.approx(r.params[1], rel=1e-9)
            spreads.append(y[t] - m["ols_beta"] * x[t] - m["ols_alpha"])
            assert m["spread"] == m["spread_ols"] == spreads[-1]
            assert m["fair_value"] == pytest.approx(m["ols_beta"] * x[t] + m["ols_alpha"])
        if len(spreads) >= 50:
            w = np.array(spreads[-50:])
            assert m["zscore"] == pytest.approx((w[-1] - w.mean()) / w.std(ddof=1), rel=1e-7, abs=1e-9)
            assert m["zscore"] == m["zscore_ols"]


def test_adf_runs_on_its_observation_time_schedule():
    eng = PairEngine(PairConfig(window=40, adf_every_ms=1_000, theilsen=False))
    x, y = series(200, seed=1)
    runs = []
    for t in range(200):
        ts = t * 100
        m = eng.update(ts, float(y[t]), float(x[t]))
        if eng.adf_due(ts):
            res = eng.run_adf(ts)
            runs.append(ts)
            assert res.nobs > 0 and math.isfinite(res.p_value)
    assert runs[0] == (40 + 20 - 2) * 100  # first OLS fit at row 39, 20 spreads later the ADF can run
    assert np.all(np.diff(runs) == 1_000)
    assert "adf_pvalue" in m and "half_life" in m


def test_time_window_drops_old_observations():
    eng = PairEngine(PairConfig(window=1_000, window_ms=2_000, min_obs=5, theilsen=False))
    x, y = series(120, seed=2)
    ts = np.cumsum(np.random.default_rng(3).integers(1, 200, 120))
    for t in range(120):
        m = eng.update(int(ts[t]), float(y[t]), float(x[t]))
    inside = ts > ts[-1] - 2_000
    r = sm.OLS(y[inside] - y[inside].mean(), sm.add_constant(x[inside] - x[inside].mean())).fit()
    assert m["ols_beta"] == pytest.approx(r.params[1], rel=1e-9)


def test_config_is_strict():
    with pytest.raises(ValidationError):
        PairConfig(windw=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PairConfig(beta_source="theilsen", theilsen=False)


def test_slow_step_due_announces_every_refit_and_adf_and_only_huber_theilsen_refits_otherwise():
    # a consumer publishes what it holds when this says a slow step follows: it must never miss one, and for the
    # robust fits it must be exact (an early publish is harmless, a late one holds entries behind a refit)
    cfg = PairConfig(window=40, huber_every_n=25, huber_every_ms=3_000, theilsen=True, theilsen_every_n=60,
                     adf_every_ms=5_000)
    eng = PairEngine(cfg)
    x, y = series(600, seed=7)
    ts = 0
    refits = adfs = 0
    for t in range(600):
        ts += 50 if t % 97 else 4_000  # now and then a gap that makes the time schedules due
        announced = eng.slow_step_due(ts)
        z_before = eng._z.n
        fits = (eng._huber.fits + eng._huber.failures, eng._theil.fits + eng._theil.failures)  # type: ignore[union-attr]
        robust_due = eng._huber.due_next(ts) or eng._theil.due_next(ts)  # type: ignore[union-attr]
        eng.update(ts, float(y[t]), float(x[t]))
        after = (eng._huber.fits + eng._huber.failures, eng._theil.fits + eng._theil.failures)  # type: ignore[union-attr]
        assert robust_due == (after != fits), t
        refits += after != fits
        if eng.adf_due(ts):
            assert announced, t
            eng.run_adf(ts)
            adfs += 1
        elif announced and after == fits:  # announced for nothing: only while the spread window is not yet growing
            assert eng._z.n == z_before, t
    assert refits > 20 and adfs > 3
