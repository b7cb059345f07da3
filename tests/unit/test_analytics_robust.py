"""Scheduled Huber / Theil–Sen fair values against cold scikit-learn fits on the same window.

Tolerance for warm vs cold Huber: both stop when L-BFGS-B's projected gradient is below tol=1e-5 on the
standardised problem, so the two optima may differ by that order; we allow 1e-3 in standardised
coefficients (slope, and intercept in units of std(y)), i.e. a fair value within 1e-3·std(y) at x̄ ± 3 sx.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor, TheilSenRegressor

from qs_analytics.robust import HuberFairValue, TheilSenFairValue

TOL = 1e-3


def standardised(x: np.ndarray, y: np.ndarray):
    mx, my, sx, sy = x.mean(), y.mean(), x.std(), y.std()
    return (x - mx) / sx, (y - my) / sy, mx, my, sx, sy


def to_standard(beta: float, alpha: float, mx: float, my: float, sx: float, sy: float) -> tuple[float, float]:
    return beta * sx / sy, (alpha + beta * mx - my) / sy


def series(n: int, seed: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = level + np.cumsum(rng.standard_normal(n)) * level * 1e-4
    y = 0.05 * x + 3.0 + rng.standard_t(2, n) * 0.05 * level * 1e-4
    return x, y


@settings(max_examples=12, deadline=None)
@given(
    window=st.integers(20, 400),
    every=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([100.0, 2_600.0, 60_000.0]),
)
def test_warm_started_huber_is_within_solver_tolerance_of_a_cold_fit(window, every, seed, level):
    x, y = series(window + 3 * every + 5, seed, level)
    hub = HuberFairValue(window, refit_every_n=every)
    fit = None
    for t in range(len(x)):
        fit = hub.update(t, float(x[t]), float(y[t]))
    assert fit is not None and hub.fits >= 2 and fit.converged
    xw, yw = x[-window:], y[-window:]
    hub.refit(len(x))  # fit the final window (warm) so that both see the same data
    fit = hub.last
    assert fit is not None
    xs, ys, mx, my, sx, sy = standardised(xw, yw)
    cold = HuberRegressor(epsilon=1.35, alpha=1e-4, max_iter=200).fit(xs.reshape(-1, 1), ys)
    b_s, a_s = to_standard(fit.beta, fit.alpha, mx, my, sx, sy)
    assert b_s == pytest.approx(cold.coef_[0], abs=TOL)
    assert a_s == pytest.approx(cold.intercept_, abs=TOL)
    assert fit.scale / sy == pytest.approx(cold.scale_, abs=TOL)


def test_raw_scale_huber_fails_at_btc_prices_where_ours_fits():
    """Why the fit is standardised: unscaled, L-BFGS-B stops far from the optimum at x ≈ 60,000."""
    x, y = series(300, 3, 60_000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raw = HuberRegressor().fit(x.reshape(-1, 1), y)
    hub = HuberFairValue(300, refit_every_n=10**6)
    for t in range(300):
        ours = hub.update(t, float(x[t]), float(y[t]))
    assert ours is not None
    xs, ys, mx, my, sx, sy = standardised(x, y)
    cold = HuberRegressor().fit(xs.reshape(-1, 1), ys)
    raw_b, _ = to_standard(float(raw.coef_[0]), float(raw.intercept_), mx, my, sx, sy)
    our_b, _ = to_standard(ours.beta, ours.alpha, mx, my, sx, sy)
    assert abs(our_b - cold.coef_[0]) < TOL
    assert abs(raw_b - cold.coef_[0]) > 10 * TOL


def test_schedule_by_count_and_by_observation_time():
    hub = HuberFairValue(10, refit_every_n=1000, refit_every_ms=500, min_obs=10)
    rng = np.random.default_rng(0)
    fits_at = []
    for t in range(60):
        before = hub.fits
        hub.update(t * 100, 100 + float(rng.standard_normal()), 50 + float(rng.standard_normal()))
        if hub.fits > before:
            fits_at.append(t * 100)
    assert fits_at == [900, 1400, 1900, 2400, 2900, 3400, 3900, 4400, 4900, 5400, 5900]
    by_n = HuberFairValue(10, refit_every_n=7)
    for t in range(40):
        by_n.update(0, float(t % 5), float(t))
    assert by_n.fits == 1 + (40 - 10) // 7


def test_constant_x_keeps_the_previous_fit():
    hub = HuberFairValue(5, refit_every_n=1)
    for t in range(5):
        hub.update(t, 60_000.0, 1.0 + t)
    assert hub.last is None


@settings(max_examples=6, deadline=None)
@given(window=st.integers(10, 200), seed=st.integers(0, 2**32 - 1))
def test_theil_sen_matches_sklearn_on_the_standardised_window(window, seed):
    x, y = series(window + 20, seed, 60_000.0)
    ts = TheilSenFairValue(window, refit_every_n=20, max_subpopulation=500)
    for t in range(len(x)):
        fit = ts.update(t, float(x[t]), float(y[t]))
    assert fit is not None
    xs, ys, mx, my, sx, sy = standardised(x[-window:], y[-window:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = TheilSenRegressor(random_state=0, max_subpopulation=500).fit(xs.reshape(-1, 1), ys)
    b_s, a_s = to_standard(fit.beta, fit.alpha, mx, my, sx, sy)
    assert b_s == pytest.approx(ref.coef_[0], rel=1e-9, abs=1e-12)
    assert a_s == pytest.approx(ref.intercept_, abs=1e-9)
    assert fit.fair_value(x[-1]) == pytest.approx(fit.beta * x[-1] + fit.alpha)
