"""Mean-reversion diagnostics of a spread: Hurst exponent and the Lo–MacKinlay variance ratio.

Hurst exponent (from the scaling of lagged differences): for lags τ = 2..max_lag,
    σ(τ) = std(s_{t+τ} − s_t)  (ddof 0, over every t),   σ(τ) ∝ τ^H,
H is the OLS slope of ln σ(τ) on ln τ. H = 0.5 for a random walk, H < 0.5 for a mean-reverting series (the
further apart, the less the spread has wandered), H > 0.5 for a trending one.

Variance ratio (Lo & MacKinlay 1988, overlapping q-period differences, bias-corrected): with T increments
d_t = s_t − s_{t−1} (t = 1..T) and μ = (s_T − s_0)/T,
    σ²_a = Σ (d_t − μ)² / (T − 1),
    σ²_c(q) = Σ_{t=q..T} (s_t − s_{t−q} − qμ)² / m,  m = q·(T − q + 1)·(1 − q/T),
    VR(q) = σ²_c(q) / σ²_a.
VR < 1: q-step moves smaller than q one-step moves (mean reversion); VR = 1 random walk. z is the
homoskedastic statistic (VR − 1)/√(2(2q − 1)(q − 1)/(3qT)); z* the heteroskedasticity-robust one,
√T·(VR − 1)/√θ, θ = Σ_{j=1..q−1} (2(q − j)/q)²·δ_j, δ_j = T·Σ_{t=j+1..T} (d_t − μ)²(d_{t−j} − μ)² / (Σ (d_t − μ)²)².
(`arch.unitroot.VarianceRatio(s, lags=q)` computes the same.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

Array = npt.NDArray[np.float64]


def hurst_many(s: Array, max_lag: int = 20) -> Array:
    """Hurst exponent of each row of `s` (P, n); nan where a row does not move. Needs n > max_lag + 1."""
    s = np.atleast_2d(np.asarray(s, dtype=np.float64))
    n = s.shape[1]
    if max_lag < 3 or n <= max_lag + 1:
        raise ValueError(f"Hurst needs max_lag >= 3 and more than max_lag + 1 points, got {max_lag} and {n}")
    taus = np.arange(2, max_lag + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logsd = np.stack([np.log(np.std(s[:, t:] - s[:, :-t], axis=1)) for t in taus], axis=1)
    lt = np.log(taus.astype(np.float64))
    lc = lt - lt.mean()
    h = (logsd - logsd.mean(axis=1, keepdims=True)) @ lc / (lc @ lc)
    return np.where(np.all(np.isfinite(logsd), axis=1), h, np.nan)


def hurst(s: npt.ArrayLike, max_lag: int = 20) -> float:
    return float(hurst_many(np.asarray(s, dtype=np.float64)[None, :], max_lag)[0])


@dataclass(frozen=True, slots=True)
class VarianceRatio:
    q: int
    vr: float
    z: float  # homoskedastic
    z_robust: float  # heteroskedasticity-robust
    p_value: float  # two-sided, from z_robust

    @property
    def mean_reverting(self) -> bool:
        return self.vr < 1.0 and self.p_value < 0.05


def variance_ratio(s: npt.ArrayLike, q: int) -> VarianceRatio:
    """Lo–MacKinlay variance ratio of the levels `s` at horizon q (see module docstring)."""
    a = np.asarray(s, dtype=np.float64).ravel()
    T = a.size - 1
    if q < 2 or 2 * q > T:
        raise ValueError(f"variance ratio needs q >= 2 and at least 2q + 1 points, got q={q} and {a.size}")
    d = np.diff(a)
    mu = (a[-1] - a[0]) / T
    dc = d - mu
    sa = float(dc @ dc) / (T - 1)
    if not sa > 0:
        raise ValueError("the series does not move: the variance ratio is undefined")
    qd = a[q:] - a[:-q] - q * mu
    m = q * (T - q + 1) * (1.0 - q / T)
    vr = float(qd @ qd) / m / sa
    z = (vr - 1.0) / math.sqrt(2.0 * (2 * q - 1) * (q - 1) / (3.0 * q * T))
    d2 = dc * dc
    den = float(d2.sum()) ** 2
    theta = sum((2.0 * (q - j) / q) ** 2 * T * float(d2[j:] @ d2[:-j]) / den for j in range(1, q))
    zr = math.sqrt(T) * (vr - 1.0) / math.sqrt(theta)
    return VarianceRatio(q, vr, z, zr, float(2.0 * norm.sf(abs(zr))))
