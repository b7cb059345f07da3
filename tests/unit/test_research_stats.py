"""Engle–Granger, Johansen, Hurst, variance ratio and lead-lag against statsmodels, arch and plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.unitroot import VarianceRatio
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from qs_analytics.coint import engle_granger, engle_granger_both
from qs_analytics.johansen import johansen
from qs_analytics.leadlag import lead_lag
from qs_analytics.meanrev import hurst, variance_ratio
from tests.unit.research_data import btc_1m, eth_btc_1s

TOL = 1e-8


def pair(seed, n, beta, noise, phi):
    """x a random walk; y = βx + an AR(1) spread with coefficient phi (phi near 1: barely mean-reverting)."""
    rng = np.random.default_rng(seed)
    x = 100.0 + np.cumsum(rng.normal(size=n))
    u = np.zeros(n)
    e = rng.normal(size=n) * noise
    for t in range(1, n):
        u[t] = phi * u[t - 1] + e[t] + 0.5 * e[t - 1]  # an MA part makes AIC pick lags > 0
    return beta * x + 5.0 + u, x


def assert_eg_matches(y, x, **kw):
    got = engle_granger(y, x, **kw)
    want = coint(y, x, trend="c", **kw)
    assert got.statistic == pytest.approx(want[0], rel=TOL, abs=TOL)
    assert got.p_value == pytest.approx(want[1], rel=TOL, abs=1e-12)
    assert [got.critical_values[k] for k in ("1%", "5%", "10%")] == pytest.approx(list(want[2]), rel=1e-14)
    return got


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(50, 700),
    beta=st.floats(-3, 3).filter(lambda b: abs(b) > 0.05),
    noise=st.floats(0.05, 20),
    phi=st.floats(0.0, 0.999),
)
def test_engle_granger_equals_statsmodels_coint(seed, n, beta, noise, phi):
    y, x = pair(seed, n, beta, noise, phi)
    assert_eg_matches(y, x)
    assert_eg_matches(x, y)
    k = min(5, n // 2 - 1)
    got = engle_granger(y, x, max_lag=k, autolag=None)
    want = coint(y, x, trend="c", maxlag=k, autolag=None)
    assert got.statistic == pytest.approx(want[0], rel=TOL, abs=TOL)
    assert got.lags_used == k


def test_engle_granger_picks_lags_like_statsmodels():
    lags = set()
    for seed in range(12):
        y, x = pair(seed, 600, 0.8, 2.0, 0.9)
        lags.add(assert_eg_matches(y, x).lags_used)
    assert len(lags) > 1 and max(lags) > 0  # the lag choice itself was exercised


def test_engle_granger_on_real_data():
    _, x, y = eth_btc_1s()
    both = engle_granger_both(y, x)
    assert_eg_matches(y, x)
    assert_eg_matches(x, y)
    assert both.best.p_value == min(both.y_on_x.p_value, both.x_on_y.p_value)
    _, c, _ = btc_1m()
    for lag in (1, 5):
        assert_eg_matches(c[lag:], c[:-lag])
    o = np.loadtxt(
        __import__("tests.unit.research_data", fromlist=["FIXTURES"]).FIXTURES / "BTCUSDT-1m-2024-08-08.csv",
        delimiter=",",
        usecols=(1, 2, 3, 4),
    )
    assert_eg_matches(o[:, 3], o[:, 1])  # close on high
    r = assert_eg_matches(o[:, 3], o[:, 0])  # close on open: the same walk one minute apart
    assert r.cointegrated_at("1%")


def test_engle_granger_rejects_bad_input():
    with pytest.raises(ValueError, match="points"):
        engle_granger([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="x has 3"):
        engle_granger(np.arange(10.0), np.arange(3.0))


def assert_johansen_matches(data):
    got = johansen(data)
    want = coint_johansen(data, 0, 1)
    k = data.shape[1]
    assert got.trace == pytest.approx(list(want.lr1), rel=1e-12)
    assert got.max_eig == pytest.approx(list(want.lr2), rel=1e-12)
    assert [[c["90%"], c["95%"], c["99%"]] for c in got.trace_crit] == want.cvt.tolist()
    assert [[c["90%"], c["95%"], c["99%"]] for c in got.max_eig_crit] == want.cvm.tolist()
    # implied rank: the first r whose trace statistic is below its 95 % value (plainly, again)
    r = next((i for i in range(k) if want.lr1[i] < want.cvt[i, 1]), k)
    assert got.rank_trace == r
    v = want.evec[:, 0]
    assert got.hedge_weights == pytest.approx(list(v / v[0]), rel=1e-12)
    return got


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 5), n=st.integers(60, 500), phi=st.floats(0.0, 0.99))
def test_johansen_equals_statsmodels(seed, k, n, phi):
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(size=n))
    data = np.empty((n, k))
    for j in range(k):
        u = np.zeros(n)
        e = rng.normal(size=n)
        for t in range(1, n):
            u[t] = phi * u[t - 1] + e[t]
        data[:, j] = rng.uniform(0.5, 2) * common + u
    assert_johansen_matches(data)


def test_johansen_on_real_data_and_a_known_rank():
    _, x, y = eth_btc_1s()
    assert_johansen_matches(np.column_stack([y, x]))
    from tests.unit.research_data import FIXTURES

    ohlc = np.loadtxt(FIXTURES / "BTCUSDT-1m-2024-08-08.csv", delimiter=",", usecols=(1, 2, 3, 4))
    got = assert_johansen_matches(ohlc)
    # open, high, low and close of one market share one stochastic trend: 3 cointegrating relations
    assert got.rank_trace == 3
    with pytest.raises(ValueError, match="2 <= k <= 5"):
        johansen(np.zeros((100, 6)))


def hurst_plain(s, max_lag):
    """Written from the definition: slope of ln std(s[t+τ] − s[t]) on ln τ, τ = 2..max_lag, with loops."""
    xs, ys = [], []
    for tau in range(2, max_lag + 1):
        diffs = [s[t + tau] - s[t] for t in range(len(s) - tau)]
        mean = sum(diffs) / len(diffs)
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs))
        xs.append(math.log(tau))
        ys.append(math.log(sd))
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)


def vr_plain(s, q):
    """Lo–MacKinlay (1988) with loops: overlapping, bias-corrected VR and the robust z*."""
    T = len(s) - 1
    mu = (s[T] - s[0]) / T
    sa = sum((s[t] - s[t - 1] - mu) ** 2 for t in range(1, T + 1)) / (T - 1)
    m = q * (T - q + 1) * (1 - q / T)
    sc = sum((s[t] - s[t - q] - q * mu) ** 2 for t in range(q, T + 1)) / m
    vr = sc / sa
    dev2 = [(s[t] - s[t - 1] - mu) ** 2 for t in range(1, T + 1)]
    tot = sum(dev2)
    theta = 0.0
    for j in range(1, q):
        delta = T * sum(dev2[t] * dev2[t - j] for t in range(j, T)) / tot**2
        theta += (2 * (q - j) / q) ** 2 * delta
    return vr, math.sqrt(T) * (vr - 1) / math.sqrt(theta)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(50, 400), phi=st.floats(-0.5, 1.0), q=st.integers(2, 12))
def test_hurst_and_variance_ratio_against_plain_loops_and_arch(seed, n, phi, q):
    rng = np.random.default_rng(seed)
    s = np.zeros(n)
    e = rng.normal(size=n) * np.exp(rng.normal(size=n) * 0.5)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + e[t]
    assert hurst(s, 20) == pytest.approx(hurst_plain(s.tolist(), 20), rel=1e-9, abs=1e-12)
    vr = variance_ratio(s, q)
    want_vr, want_z = vr_plain(s.tolist(), q)
    assert vr.vr == pytest.approx(want_vr, rel=1e-9)
    assert vr.z_robust == pytest.approx(want_z, rel=1e-9, abs=1e-12)
    ref = VarianceRatio(s, lags=q)
    assert vr.z_robust == pytest.approx(ref.stat, rel=1e-9, abs=1e-12)
    assert vr.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert vr.z == pytest.approx(VarianceRatio(s, lags=q, robust=False).stat, rel=1e-9, abs=1e-12)


def test_hurst_tells_mean_reversion_from_trend_on_real_data():
    _, c, _ = btc_1m()
    s = np.log(c)
    h_walk = hurst(s)
    h_noise = hurst(np.diff(s))  # returns revert to their mean at once
    assert h_noise < 0.2 < 0.35 < h_walk < 0.7
    assert hurst(s) == pytest.approx(hurst_plain(s.tolist(), 20), rel=1e-9)
    assert variance_ratio(s, 10).vr == pytest.approx(vr_plain(s.tolist(), 10)[0], rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lead=st.integers(-4, 4), L=st.integers(4, 8))
def test_lead_lag_finds_the_lead_and_equals_corrcoef(seed, lead, L):
    rng = np.random.default_rng(seed)
    n = 400
    r = rng.normal(size=n + 20) * 0.01
    rx = r[10 : 10 + n]
    ry = 0.8 * r[10 - lead : 10 - lead + n] + 0.002 * rng.normal(size=n)  # y moves `lead` rows after x
    x = 100 * np.exp(np.concatenate([[0], np.cumsum(rx)]))
    y = 50 * np.exp(np.concatenate([[0], np.cumsum(ry)]))
    got = lead_lag(x, y, L)
    assert got.best_lag == lead
    gx, gy = np.diff(np.log(x)), np.diff(np.log(y))
    for k, rho in zip(got.lags, got.rho, strict=True):
        a, b = (gx[: n - k], gy[k:]) if k >= 0 else (gx[-k:], gy[: n + k])
        assert rho == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9, abs=1e-12)


def test_lead_lag_on_real_data():
    _, x, y = eth_btc_1s()
    got = lead_lag(x, y, 5)
    assert got.lags == list(range(-5, 6)) and abs(got.best_rho) == max(abs(r) for r in got.rho)
