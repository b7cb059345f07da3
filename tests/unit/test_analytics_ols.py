"""RollingOLS against statsmodels OLS (and exact rational arithmetic where statsmodels itself is not exact)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from qs_analytics.ols import RollingOLS

EPS = np.finfo(float).eps


def sm_raw(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    r = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()
    return float(r.params[1]), float(r.params[0]), float(r.rsquared), math.sqrt(r.scale) if len(x) > 2 else math.nan


def sm_centred(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """The same OLS with x and y centred first (β, R², residuals unchanged; α shifted back): exactly the
    model of sm.OLS(y, add_constant(x)), but well conditioned. Unshifted, statsmodels' error is relative to
    ‖y‖ and κ([1, x]), which at 60,000 ± 0.01 is ~1e-9..1e-5 of β (shown in the test below)."""
    mx = math.fsum(x) / len(x)
    my = math.fsum(y) / len(y)
    r = sm.OLS(y - my, sm.add_constant(x - mx, has_constant="add")).fit()
    beta = float(r.params[1])
    resid_std = math.sqrt(r.scale) if len(x) > 2 else math.nan
    return beta, my + float(r.params[0]) - beta * mx, float(r.rsquared), resid_std


def exact(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xs = [Fraction(v) for v in x]
    ys = [Fraction(v) for v in y]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((a - mx) * (c - my) for a, c in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)
    return float(b), float(my - b * mx)


def alpha_scale(beta: float, alpha: float, x: np.ndarray) -> float:
    # α = ȳ − βx̄: its rounding error is relative to the terms it is the difference of, not to α itself
    return abs(alpha) + abs(beta * float(np.mean(x))) + 1e-300


def raw_tolerance(x: np.ndarray, y: np.ndarray, beta: float) -> float:
    """statsmodels' own error bound on a raw [1, x] design: eps·(κ + κ²·tanθ), floored at 1e-9."""
    xd = sm.add_constant(x, has_constant="add")
    kappa = np.linalg.cond(xd)
    r = sm.OLS(y, xd).fit()
    tan = np.linalg.norm(r.resid) / max(np.linalg.norm(r.fittedvalues), 1e-300)
    return max(1e-9, 10 * EPS * (kappa + kappa**2 * tan) * (1 + abs(r.params[0]) / max(abs(beta), 1e-300)))


def series(level: float, scale: float, beta: float, noise: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = level + scale * rng.standard_normal(n)
    y = beta * x + 3.0 + noise * rng.standard_normal(n)
    return x, y


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(2, 60),
    extra=st.integers(0, 80),
    level=st.sampled_from([0.0, 1.0, 2_600.0, 60_000.0]),
    scale=st.sampled_from([1e-2, 1.0, 50.0]),
    beta=st.floats(-3, 3),
    noise=st.sampled_from([1e-3, 0.1, 10.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_statsmodels_every_step(window, extra, level, scale, beta, noise, seed):
    x, y = series(level, scale, beta, noise, window + extra, seed)
    ols = RollingOLS(window)
    for t in range(len(x)):
        fit = ols.update(float(x[t]), float(y[t]))
        if t < window - 1:
            assert fit is None
            continue
        xs, ys = x[t - window + 1 : t + 1], y[t - window + 1 : t + 1]
        b_ref, a_ref, r2, resid_std = sm_centred(xs, ys)
        assert fit is not None and fit.n == window
        assert fit.beta == pytest.approx(b_ref, rel=1e-9, abs=1e-10)
        assert abs(fit.alpha - a_ref) <= 1e-9 * alpha_scale(b_ref, a_ref, xs)
        b_raw, a_raw, _, _ = sm_raw(xs, ys)
        tol = raw_tolerance(xs, ys, b_raw)
        assert fit.beta == pytest.approx(b_raw, rel=tol, abs=1e-10)
        assert abs(fit.alpha - a_raw) <= tol * alpha_scale(b_raw, a_raw, xs)
        if window > 2:
            # SSR = Syy − β·Sxy cancels when the fit is almost perfect: error ≈ eps·Syy/SSR
            rel = 1e-9 + 1e3 * EPS / max(1.0 - r2, 1e-300)
            assert fit.resid_std == pytest.approx(resid_std, rel=rel, abs=1e-12)
            assert fit.r2 == pytest.approx(r2, rel=1e-9, abs=1e-9)


@settings(max_examples=12, deadline=None)
@given(window=st.integers(2, 5_000), seed=st.integers(0, 2**32 - 1), level=st.sampled_from([3_000.0, 60_000.0]))
def test_long_windows_at_sampled_points(window, seed, level):
    x, y = series(level, 1e-2, 0.05, 0.1, 2 * window + 37, seed)
    ols = RollingOLS(window)
    check = {window - 1, window + window // 2, 2 * window - 1, 2 * window + 36}
    for t in range(len(x)):
        fit = ols.update(float(x[t]), float(y[t]))
        if t in check:
            xs, ys = x[t - window + 1 : t + 1], y[t - window + 1 : t + 1]
            b_ref, a_ref, _, _ = sm_centred(xs, ys)
            assert fit is not None
            assert fit.beta == pytest.approx(b_ref, rel=1e-9, abs=1e-10)
            assert abs(fit.alpha - a_ref) <= 1e-9 * alpha_scale(b_ref, a_ref, xs)


class NaiveSumsOLS:
    """The textbook running sums Σx, Σy, Σx², Σxy: what RollingOLS must not be."""

    def __init__(self, window: int) -> None:
        self.w = window
        self.buf: list[tuple[float, float]] = []
        self.sx = self.sy = self.sxx = self.sxy = 0.0

    def update(self, x: float, y: float) -> float | None:
        self.buf.append((x, y))
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y
        if len(self.buf) > self.w:
            xo, yo = self.buf.pop(0)
            self.sx -= xo
            self.sy -= yo
            self.sxx -= xo * xo
            self.sxy -= xo * yo
        n = len(self.buf)
        if n < self.w:
            return None
        den = n * self.sxx - self.sx * self.sx
        return (n * self.sxy - self.sx * self.sy) / den if den != 0 else math.nan


def test_quiet_btc_window_exact_where_naive_sums_fail():
    """x = 60,000 ± 0.01: ours matches the exact rational answer; running sums of x² do not even get close."""
    window = 200
    x, y = series(60_000.0, 1e-2, 0.05, 1e-2, 3 * window, seed=7)
    ours, naive = RollingOLS(window), NaiveSumsOLS(window)
    worst_ours = worst_naive = 0.0
    for t in range(len(x)):
        fit = ours.update(float(x[t]), float(y[t]))
        nb = naive.update(float(x[t]), float(y[t]))
        if t >= window - 1 and t % 25 == 0:
            b, a = exact(x[t - window + 1 : t + 1], y[t - window + 1 : t + 1])
            assert fit is not None
            worst_ours = max(worst_ours, abs(fit.beta - b) / abs(b))
            assert abs(fit.alpha - a) <= 1e-12 * alpha_scale(b, a, x)
            worst_naive = max(worst_naive, abs(nb - b) / abs(b) if nb == nb else math.inf)
    assert worst_ours < 1e-11
    assert worst_naive > 1e-3
    b, _ = exact(x[-window:], y[-window:])
    b_raw, *_ = sm_raw(x[-window:], y[-window:])
    assert abs(b_raw - b) / abs(b) > 1e3 * worst_ours  # statsmodels' raw design is the less exact one here


def test_constant_x_is_degenerate_not_a_crash():
    ols = RollingOLS(5)
    fits = [ols.update(60_000.12, 1.0 + 0.1 * i) for i in range(6)]
    last = fits[-1]
    assert last is not None and math.isnan(last.beta) and last.reason and "constant" in last.reason
    for i in range(5):
        fit = ols.update(60_000.12 + i, 2.0 * i)
    assert fit is not None and fit.reason is None and fit.beta == pytest.approx(2.0, rel=1e-12)


def test_window_two_is_an_exact_line():
    ols = RollingOLS(2)
    assert ols.update(1.0, 3.0) is None
    fit = ols.update(2.0, 5.0)
    assert fit is not None and (fit.beta, fit.alpha, fit.r2) == pytest.approx((2.0, 1.0, 1.0))
    assert math.isnan(fit.resid_std)


@settings(max_examples=25, deadline=None)
@given(
    window_ms=st.integers(50, 2_000),
    gaps=st.lists(st.integers(0, 400), min_size=5, max_size=120),
    seed=st.integers(0, 2**32 - 1),
)
def test_time_window_matches_statsmodels_on_the_same_observations(window_ms, gaps, seed):
    ts = np.cumsum(gaps)
    x, y = series(60_000.0, 5.0, 0.05, 0.3, len(ts), seed)
    ols = RollingOLS(1_000, window_ms=window_ms, min_obs=3)
    for t in range(len(ts)):
        fit = ols.update(float(x[t]), float(y[t]), int(ts[t]))
        inside = ts > ts[t] - window_ms
        inside[t + 1 :] = False
        if inside.sum() < 3:
            assert fit is None
            continue
        xs, ys = x[inside], y[inside]
        b_ref, a_ref, _, _ = sm_centred(xs, ys)
        assert fit is not None and fit.n == inside.sum()
        assert fit.beta == pytest.approx(b_ref, rel=1e-9, abs=1e-10)
        assert abs(fit.alpha - a_ref) <= 1e-9 * alpha_scale(b_ref, a_ref, xs)
