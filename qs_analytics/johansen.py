"""Johansen cointegration test for 2 to 5 series (statsmodels `coint_johansen`, det_order 0, one lagged difference).

Trace statistic for rank r: −T·Σ_{i>r} ln(1 − λ_i), H0 "at most r cointegrating vectors"; max-eigenvalue
statistic: −T·ln(1 − λ_{r+1}), H0 "exactly r against r + 1". The implied rank is the first r (0, 1, …) whose
statistic is below its 95 % critical value (sequential testing from r = 0). The first eigenvector (the most
stationary combination) gives the hedge weights, scaled so the first series has weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.vector_ar.vecm import coint_johansen

LEVELS = ("90%", "95%", "99%")


@dataclass(frozen=True, slots=True)
class Johansen:
    trace: list[float]  # r = 0 .. k−1
    trace_crit: list[dict[str, float]]
    max_eig: list[float]
    max_eig_crit: list[dict[str, float]]
    eigenvalues: list[float]
    rank_trace: int  # at 95 %
    rank_max_eig: int
    hedge_weights: list[float]  # first eigenvector, first weight 1


def _rank(stats: npt.NDArray[np.float64], crit95: npt.NDArray[np.float64]) -> int:
    for r, (s, c) in enumerate(zip(stats, crit95, strict=True)):
        if s < c:
            return r
    return len(stats)


def johansen(data: npt.ArrayLike, det_order: int = 0, k_ar_diff: int = 1) -> Johansen:
    """Johansen test of the columns of `data` (T × k, 2 ≤ k ≤ 5 — the critical-value tables stop at 12)."""
    a = np.asarray(data, dtype=np.float64)
    if a.ndim != 2 or not 2 <= a.shape[1] <= 5:
        raise ValueError(f"need a T x k array with 2 <= k <= 5 series, got shape {a.shape}")
    if a.shape[0] < 10 * a.shape[1] or not np.all(np.isfinite(a)):
        raise ValueError(f"need at least {10 * a.shape[1]} finite rows, got {a.shape[0]}")
    r = coint_johansen(a, det_order, k_ar_diff)
    crit = lambda m: [dict(zip(LEVELS, map(float, row), strict=True)) for row in m]  # noqa: E731
    v = r.evec[:, 0]
    return Johansen(
        trace=[float(s) for s in r.lr1],
        trace_crit=crit(r.cvt),
        max_eig=[float(s) for s in r.lr2],
        max_eig_crit=crit(r.cvm),
        eigenvalues=[float(e) for e in r.eig],
        rank_trace=_rank(r.lr1, r.cvt[:, 1]),
        rank_max_eig=_rank(r.lr2, r.cvm[:, 1]),
        hedge_weights=[float(w) for w in v / v[0]],
    )
