"""Kalman-filter hedge ratio: state [β, α] follows a random walk, observed through y_t = [x_t, 1]·state + v.

Model (the batch CLI's definition): transition identity, process noise Q = δ/(1−δ)·I, observation noise
Var(v) = R, initial state [0, 0] with covariance init_cov·I. Each step predicts (P += Q) and then updates
with row t, so the state reported at row t is the filtered state after seeing row t.

`KalmanHedge.update` does the 2x2 algebra inline in Python floats: numpy's per-call overhead (~1 µs per
tiny array op) would cost more than the whole update. The operations follow simdkalman's `update` in the
same order (S = H·(P·Hᵀ) + R, K = P·Hᵀ/S, P − K·(H·P)) so the two agree to rounding.
`kalman_filter_batch` runs the same model through simdkalman's primitives, vectorised over pairs, for
recomputing history and uploaded files.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from simdkalman import primitives

from qs_analytics import defaults


class KalmanResult(NamedTuple):
    """Filtered state after one observation (a NamedTuple: built every tick, cheaper than a dataclass)."""

    beta: float
    alpha: float
    e: float  # prediction error y − [x, 1]·prior state
    s: float  # its variance H·P_prior·Hᵀ + R
    p_bb: float  # posterior state covariance: Var(β)
    p_ba: float  # Cov(β, α)
    p_ab: float  # Cov(α, β) (kept separately: the update is not forced symmetric, like simdkalman)
    p_aa: float  # Var(α)
    n: int


def _check(delta: float, obs_noise: float, init_cov: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not obs_noise > 0.0:
        raise ValueError(f"obs_noise must be > 0, got {obs_noise}")
    if not init_cov > 0.0:
        raise ValueError(f"init_cov must be > 0, got {init_cov}")


class KalmanHedge:
    """Per-observation Kalman update of [β, α]; warm from the first observation."""

    __slots__ = ("delta", "obs_noise", "init_cov", "_q", "beta", "alpha", "_p00", "_p01", "_p10", "_p11", "n")

    def __init__(
        self,
        delta: float = defaults.KALMAN_DELTA,
        obs_noise: float = defaults.KALMAN_OBS_NOISE,
        init_cov: float = defaults.KALMAN_INIT_COV,
    ) -> None:
        _check(delta, obs_noise, init_cov)
        self.delta = delta
        self.obs_noise = obs_noise
        self.init_cov = init_cov
        self._q = delta / (1.0 - delta)
        self.beta = 0.0
        self.alpha = 0.0
        self._p00 = self._p11 = init_cov
        self._p01 = self._p10 = 0.0
        self.n = 0

    def update(self, x: float, y: float) -> KalmanResult:
        q = self._q
        p00 = self._p00 + q
        p01 = self._p01
        p10 = self._p10
        p11 = self._p11 + q
        # P·Hᵀ with H = [x, 1]
        ph0 = p00 * x + p01
        ph1 = p10 * x + p11
        s = (x * ph0 + ph1) + self.obs_noise
        inv_s = 1.0 / s  # simdkalman multiplies by inv(S); dividing instead would round differently
        k0 = ph0 * inv_s
        k1 = ph1 * inv_s
        e = y - (x * self.beta + self.alpha)
        self.beta += k0 * e
        self.alpha += k1 * e
        # H·P
        hp0 = x * p00 + p10
        hp1 = x * p01 + p11
        self._p00 = p00 = p00 - k0 * hp0
        self._p01 = p01 = p01 - k0 * hp1
        self._p10 = p10 = p10 - k1 * hp0
        self._p11 = p11 = p11 - k1 * hp1
        self.n += 1
        return KalmanResult(self.beta, self.alpha, e, s, p00, p01, p10, p11, self.n)


def kalman_filter_batch(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    delta: float = defaults.KALMAN_DELTA,
    obs_noise: float = defaults.KALMAN_OBS_NOISE,
    init_cov: float = defaults.KALMAN_INIT_COV,
) -> dict[str, npt.NDArray[np.float64]]:
    """Filter whole series with simdkalman's primitives; x, y of shape (n,) or (pairs, n).

    Returns arrays shaped like the input: `beta`, `alpha`, `e`, `s`, and `cov` with two extra trailing
    axes (2, 2). The Python loop is over time only; each step is vectorised over the pairs.
    """
    _check(delta, obs_noise, init_cov)
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim not in (1, 2):
        raise ValueError(f"x and y must have the same shape (n,) or (pairs, n); got {xa.shape} and {ya.shape}")
    single = xa.ndim == 1
    xa = np.atleast_2d(xa)
    ya = np.atleast_2d(ya)
    pairs, n = xa.shape
    q = delta / (1.0 - delta)
    mean = np.zeros((pairs, 2, 1))
    cov = np.tile(np.eye(2) * init_cov, (pairs, 1, 1))
    a = np.tile(np.eye(2), (pairs, 1, 1))
    qm = np.tile(np.eye(2) * q, (pairs, 1, 1))
    r = np.full((pairs, 1, 1), obs_noise)
    h = np.ones((pairs, 1, 2))
    out_beta = np.empty((pairs, n))
    out_alpha = np.empty((pairs, n))
    out_e = np.empty((pairs, n))
    out_s = np.empty((pairs, n))
    out_cov = np.empty((pairs, n, 2, 2))
    for t in range(n):
        mean, cov = primitives.predict(mean, cov, a, qm)
        h[:, 0, 0] = xa[:, t]
        meas = ya[:, t].reshape(pairs, 1, 1)
        out_e[:, t] = (meas - h @ mean)[:, 0, 0]
        out_s[:, t] = (h @ (cov @ np.swapaxes(h, -1, -2)) + r)[:, 0, 0]
        mean, cov = primitives.update(mean, cov, h, r, meas)
        out_beta[:, t] = mean[:, 0, 0]
        out_alpha[:, t] = mean[:, 1, 0]
        out_cov[:, t] = cov
    res = {"beta": out_beta, "alpha": out_alpha, "e": out_e, "s": out_s, "cov": out_cov}
    if single:
        res = {k: v[0] for k, v in res.items()}
    return res
