"""Lead-lag of two legs: cross-correlation of their returns at lags −L..L.

ρ(k) = corr(rx_t, ry_{t+k}) over the t where both exist: k > 0 means x moves first (x leads y by k rows),
k < 0 that y leads. Returns are log returns of the aligned closes. The lead is the k of the largest |ρ|
(the smaller |k| on a tie, so a contemporaneous link is not mistaken for a lead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class LeadLag:
    lags: list[int]
    rho: list[float]  # nan where a side does not move
    best_lag: int
    best_rho: float


def _corr(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    ac = a - a.mean()
    bc = b - b.mean()
    den = math.sqrt(float(ac @ ac) * float(bc @ bc))
    return float(ac @ bc) / den if den > 0 else math.nan


def lead_lag(x: npt.ArrayLike, y: npt.ArrayLike, max_lag: int) -> LeadLag:
    """Cross-correlation of the log returns of closes x and y (> 0) at lags −max_lag..max_lag."""
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.size != ya.size:
        raise ValueError(f"x has {xa.size} points but y has {ya.size}")
    if max_lag < 0 or xa.size < max_lag + 4:
        raise ValueError(f"need max_lag >= 0 and at least max_lag + 4 points, got {max_lag} and {xa.size}")
    if np.any(xa <= 0) or np.any(ya <= 0):
        raise ValueError("prices must be > 0")
    rx = np.diff(np.log(xa))
    ry = np.diff(np.log(ya))
    n = rx.size
    lags = list(range(-max_lag, max_lag + 1))
    rho = [_corr(rx[: n - k], ry[k:]) if k >= 0 else _corr(rx[-k:], ry[: n + k]) for k in lags]
    order = sorted((i for i in range(len(lags)) if math.isfinite(rho[i])), key=lambda i: (-abs(rho[i]), abs(lags[i])))
    if not order:
        return LeadLag(lags, rho, 0, math.nan)
    return LeadLag(lags, rho, lags[order[0]], rho[order[0]])
