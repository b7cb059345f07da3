"""Spread z-score, leg correlation, ADF and half-life against numpy / statsmodels references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import adfuller

from qs_analytics.spread import RollingCorrelation, SpreadZScore, spread
from qs_analytics.stationarity import MIN_ADF_POINTS, adf_max_lag, adf_test, half_life


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(2, 300),
    extra=st.integers(0, 300),
    level=st.sampled_from([0.0, 3.0, 60_000.0]),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_zscore_matches_numpy(window, extra, level, scale, seed):
    s = level + scale * np.random.default_rng(seed).standard_normal(window + extra)
    z = SpreadZScore(window)
    for t in range(len(s)):
        r = z.update(float(s[t]))
        if t < window - 1:
            assert r is None
            continue
        w = s[t - window + 1 : t + 1]
        # fsum-based two-pass reference: numpy's pairwise mean is off by ~eps·level, which at 60,000 is
        # 1e-8 of a 1e-3 deviation, i.e. the reference would be less accurate than the code under test
        mean = math.fsum(w) / window
        dev = w - mean
        mean += math.fsum(dev) / window
        std = math.sqrt(math.fsum((w - mean) ** 2) / (window - 1))
        assert r is not None and r.n == window
        assert r.mean == pytest.approx(mean, rel=1e-12, abs=1e-12 * scale)
        assert r.std == pytest.approx(std, rel=1e-9)
        # each input carries a rounding error of eps·level, i.e. eps·level/scale in z units: at 60,000 with a
        # spread std of 1e-3 that is ~1e-8, which no summation order can beat
        z_floor = 64 * np.finfo(float).eps * level / scale
        assert r.z == pytest.approx((s[t] - mean) / std, rel=1e-9, abs=max(1e-9, z_floor))


def test_zscore_of_a_constant_spread_is_undefined():
    z = SpreadZScore(3)
    results = [z.update(60_000.25) for _ in range(4)]
    assert results[-1] is not None and math.isnan(results[-1].z) and results[-1].std == 0.0


def test_spread_formula():
    assert spread(10.0, 2.0, 3.0, 1.0) == 3.0


@settings(max_examples=30, deadline=None)
@given(window=st.integers(2, 200), extra=st.integers(0, 200), seed=st.integers(0, 2**32 - 1))
def test_correlation_matches_numpy_on_log_returns(window, extra, seed):
    rng = np.random.default_rng(seed)
    n = window + extra + 1
    common = rng.standard_normal(n)
    x = 60_000 * np.exp(np.cumsum(1e-4 * (common + rng.standard_normal(n))))
    y = 2_600 * np.exp(np.cumsum(1e-4 * (common + 0.5 * rng.standard_normal(n))))
    rx, ry = np.diff(np.log(x)), np.diff(np.log(y))
    c = RollingCorrelation(window)
    for t in range(n):
        r = c.update(float(x[t]), float(y[t]))
        if t < window:
            assert r is None
            continue
        ref = np.corrcoef(rx[t - window : t], ry[t - window : t])[0, 1]
        assert r == pytest.approx(ref, abs=1e-9)


def test_correlation_skips_the_log_of_a_leg_that_did_not_move():
    c = RollingCorrelation(3)
    prices = [(100.0, 50.0), (101.0, 50.0), (101.0, 50.5), (102.0, 51.0)]
    out = [c.update(x, y) for x, y in prices]
    rx = np.diff(np.log([p[0] for p in prices]))
    ry = np.diff(np.log([p[1] for p in prices]))
    assert out[-1] == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(MIN_ADF_POINTS, 600), phi=st.sampled_from([0.0, 0.5, 0.95, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_adf_matches_statsmodels_with_the_documented_lag_bound(n, phi, seed):
    e = np.random.default_rng(seed).standard_normal(n)
    s = np.empty(n)
    s[0] = e[0]
    for t in range(1, n):
        s[t] = phi * s[t - 1] + e[t]
    s += 60_000.0
    res = adf_test(s)
    maxlag = min(math.ceil(12 * (n / 100) ** 0.25), n // 3 - 2, 24)
    assert adf_max_lag(n) == maxlag
    stat, p, lags, nobs, crit, _ = adfuller(s, maxlag=maxlag, autolag="AIC", regression="c", result_object=False)
    assert res.statistic == pytest.approx(stat, rel=1e-12)
    assert res.p_value == pytest.approx(p, rel=1e-12, abs=1e-300)
    assert (res.lags_used, res.nobs) == (lags, nobs)
    assert res.critical_values == pytest.approx(crit)
    assert res.needs == 0
    if stat < crit["5%"]:
        assert res.verdict.startswith("Stationary at") and res.stationary_at("10%")
    else:
        assert res.verdict == "Not stationary: no evidence of mean reversion" or res.verdict.startswith(
            "Stationary at 10%"
        )


def test_adf_on_short_and_constant_input():
    short = adf_test(np.arange(5.0))
    assert short.needs == MIN_ADF_POINTS - 5 and f"needs {MIN_ADF_POINTS - 5} more points" in short.verdict
    assert not short.ran
    const = adf_test(np.full(100, 60_000.5))
    assert not const.ran and "Constant" in const.verdict
    assert adf_test([]).needs == MIN_ADF_POINTS


def test_adf_verdict_on_clear_cases():
    rng = np.random.default_rng(1)
    assert adf_test(rng.standard_normal(500)).verdict == "Stationary at 1%: the spread mean-reverts"
    walk = adf_test(np.cumsum(rng.standard_normal(500)))
    assert walk.p_value > 0.05


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 500), phi=st.floats(-0.5, 1.2), seed=st.integers(0, 2**32 - 1))
def test_half_life_matches_statsmodels_ar1(n, phi, seed):
    e = np.random.default_rng(seed).standard_normal(n)
    s = np.empty(n)
    s[0] = e[0]
    for t in range(1, n):
        s[t] = min(max(phi * s[t - 1] + e[t], -1e6), 1e6)
    r = sm.OLS(np.diff(s), sm.add_constant(s[:-1], has_constant="add")).fit()
    a, b = float(r.params[0]), float(r.params[1])
    hl = half_life(s)
    assert hl is not None and hl.n == n - 1
    assert hl.b == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert hl.a == pytest.approx(a, rel=1e-9, abs=1e-9 * (1 + abs(b * s[:-1].mean())))
    if b >= 0:
        assert hl.half_life == math.inf
    elif b <= -1:
        assert math.isnan(hl.half_life)
    else:
        assert hl.half_life == pytest.approx(-math.log(2) / math.log(1 + b), rel=1e-8)


def test_half_life_of_a_known_ar1():
    # s_t = 0.5 s_{t-1} exactly: b = -0.5, a shock halves every step
    s = 1000.0 * 0.5 ** np.arange(30)
    hl = half_life(s)
    assert hl is not None and hl.half_life == pytest.approx(1.0, rel=1e-9)
    assert half_life([1.0, 2.0]) is None
