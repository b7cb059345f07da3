"""KalmanHedge against simdkalman's primitives with a time-varying observation matrix H_t = [[x_t, 1]]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simdkalman import primitives

from qs_analytics.kalman import KalmanHedge, kalman_filter_batch


def reference(x: np.ndarray, y: np.ndarray, delta: float, r: float, c: float):
    """Predict (P += Q) then update with row t, exactly the batch CLI's definition, step by step."""
    mean, cov = np.zeros((2, 1)), np.eye(2) * c
    a, q, rm = np.eye(2), np.eye(2) * delta / (1 - delta), np.array([[r]])
    for xt, yt in zip(x, y, strict=True):
        mean, cov = primitives.predict(mean, cov, a, q)
        h = np.array([[xt, 1.0]])
        e = float(yt - (h @ mean)[0, 0])
        s = float((h @ cov @ h.T)[0, 0] + r)
        mean, cov = primitives.update(mean, cov, h, rm, np.array([[yt]]))
        yield float(mean[0, 0]), float(mean[1, 0]), e, s, cov.copy()


@settings(max_examples=40, deadline=None)
@given(
    level=st.sampled_from([1.0, 2_600.0, 60_000.0]),
    step=st.sampled_from([1e-2, 1.0, 20.0]),
    delta=st.sampled_from([1e-8, 1e-6, 1e-4, 1e-2]),
    obs_noise=st.sampled_from([1e-4, 1e-2, 1.0]),
    init_cov=st.sampled_from([1e-2, 1.0, 100.0]),
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_simdkalman_primitives(level, step, delta, obs_noise, init_cov, n, seed):
    rng = np.random.default_rng(seed)
    x = level + np.cumsum(step * rng.standard_normal(n))
    y = 0.05 * x + 3.0 + np.sqrt(obs_noise) * rng.standard_normal(n)
    kf = KalmanHedge(delta, obs_noise, init_cov)
    for t, (b, a, e, s, cov) in enumerate(reference(x, y, delta, obs_noise, init_cov)):
        k = kf.update(float(x[t]), float(y[t]))
        # 1e-9 relative to |β|, or to β's posterior std where β passes near zero: simdkalman's matmul may
        # round through BLAS FMAs, and an ill-identified state (x ≈ 1 ± 0.01) amplifies that last-bit noise
        assert abs(k.beta - b) <= 1e-9 * (abs(b) + np.sqrt(cov[0, 0]))
        # α is recovered from y − βx: compare it on that scale
        assert abs(k.alpha - a) <= 1e-9 * (abs(a) + abs(b * x[t]) + np.sqrt(cov[1, 1]))
        assert k.e == pytest.approx(e, rel=1e-9, abs=1e-9 * (abs(y[t]) + 1e-12))
        assert k.s == pytest.approx(s, rel=1e-9)
        ours = np.array([[k.p_bb, k.p_ba], [k.p_ab, k.p_aa]])
        # P − K·H·P cancels when x is large; compare on the scale of the matrix
        assert np.max(np.abs(ours - cov)) <= 1e-9 * np.max(np.abs(cov))
        assert k.n == t + 1


@settings(max_examples=15, deadline=None)
@given(pairs=st.integers(1, 4), n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_batch_equals_incremental_for_several_pairs(pairs, n, seed):
    rng = np.random.default_rng(seed)
    x = 60_000.0 + np.cumsum(rng.standard_normal((pairs, n)), axis=1)
    y = 0.05 * x + rng.standard_normal((pairs, n))
    out = kalman_filter_batch(x, y, 1e-6, 1e-2, 1.0)
    assert out["beta"].shape == (pairs, n) and out["cov"].shape == (pairs, n, 2, 2)
    for p in range(pairs):
        kf = KalmanHedge(1e-6, 1e-2, 1.0)
        single = kalman_filter_batch(x[p], y[p], 1e-6, 1e-2, 1.0)
        for t in range(n):
            k = kf.update(float(x[p, t]), float(y[p, t]))
            assert out["beta"][p, t] == pytest.approx(k.beta, rel=1e-9, abs=1e-12)
            assert abs(out["alpha"][p, t] - k.alpha) <= 1e-9 * (abs(k.alpha) + abs(k.beta * x[p, t]))
            assert out["e"][p, t] == pytest.approx(k.e, rel=1e-9, abs=1e-9)
            assert out["s"][p, t] == pytest.approx(k.s, rel=1e-9)
            assert single["beta"][t] == out["beta"][p, t]


def test_first_update_from_zero_state():
    k = KalmanHedge(delta=0.5, obs_noise=1.0, init_cov=1.0).update(2.0, 3.0)
    # prior P = (1 + 1)·I, S = [2, 1]·2I·[2, 1]ᵀ + 1 = 11, K = 2·[2, 1]/11, e = 3
    assert (k.beta, k.alpha, k.e, k.s) == pytest.approx((12 / 11, 6 / 11, 3.0, 11.0))


@pytest.mark.parametrize("args", [(0.0, 1.0, 1.0), (1.0, 1.0, 1.0), (0.1, 0.0, 1.0), (0.1, 1.0, -1.0)])
def test_rejects_invalid_parameters(args):
    with pytest.raises(ValueError):
        KalmanHedge(*args)
