"""Engle–Granger cointegration, vectorised across many pairs, and the Johansen test.

Engle–Granger two-step (statsmodels `coint(y, x, trend="c")`, reproduced exactly, including its default lag
choice): (1) OLS y = βx + α + e; (2) ADF regression without constant on the residuals,
    Δe_t = γ·e_{t−1} + Σ_{i=1..l} φ_i·Δe_{t−i} + u_t,
whose t-statistic of γ is the test statistic. The lag l is chosen like `adfuller(autolag="aic")`: every
l = 0..L is fitted on the same sample (the last n − 1 − L differences), the smallest AIC wins (ties: the
smaller l), then the chosen regression is refitted on its own, longer sample. L defaults to Schwert's
ceil(12·(n/100)^¼), capped at n//2 − 1 (series need `MIN_POINTS`); with `autolag=None` l = L (statsmodels'
`autolag=None`). Because β was estimated, the statistic is compared with MacKinnon's residual-based
distribution for 2 variables (`mackinnonp(stat, "c", N=2)`, critical values `mackinnoncrit(2, "c", nobs − 1)`),
which is stricter than plain ADF's. A pair whose regression fits perfectly (R² ≥ 1 − 100·√eps) gets
stat −inf, p 0 (as statsmodels, without its warning).

The vectorised form builds, for every pair, the Gram matrix of the ADF regressors from cumulative sums of
lagged products (O(n·L) per pair instead of O(n·L²)), and gets every nested lag's residual sum of squares
from one Cholesky factor (the fit with the first j regressors has SSR = y'y − Σ_{i<j} w_i², L·w = X'y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.adfvalues import mackinnoncrit, mackinnonp

Array = npt.NDArray[np.float64]
_SQRTEPS = math.sqrt(np.finfo(np.float64).eps)
_LOG2PI = math.log(2.0 * math.pi)
# Below ~40 points statsmodels' default maximum lag leaves the largest lag regression no degrees of
# freedom (its answer is rounding noise); 50 keeps every candidate regression honest.
MIN_POINTS = 50


def default_max_lag(n: int) -> int:
    """statsmodels' `adfuller` default for n residuals with regression "n": Schwert's rule, capped."""
    return min(n // 2 - 1, int(math.ceil(12.0 * (n / 100.0) ** 0.25)))


def ols_residuals(y: Array, x: Array) -> tuple[Array, Array, Array, Array]:
    """Row-wise OLS y = βx + α for (P, n) arrays: (β, α, residuals, R²), from centred sums."""
    mx = x.mean(axis=1, keepdims=True)
    my = y.mean(axis=1, keepdims=True)
    xc = x - mx
    yc = y - my
    sxx = np.einsum("pn,pn->p", xc, xc)
    sxy = np.einsum("pn,pn->p", xc, yc)
    syy = np.einsum("pn,pn->p", yc, yc)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = sxy / sxx
        alpha = my[:, 0] - beta * mx[:, 0]
        resid = yc - beta[:, None] * xc
        r2 = 1.0 - np.einsum("pn,pn->p", resid, resid) / syy
    return beta, alpha, resid, r2


class _ProductSums:
    """Σ_{s=lo..hi} prod[s] for one product series per row, when lo is near the start and hi near the end.

    Kept as the full total and short prefix and suffix cumulative sums (the windows differ from the whole
    series by at most `edge` terms at each end), so no (P, m) temporary is needed per lag.
    """

    __slots__ = ("head", "tail", "total", "m")

    def __init__(self, total: Array, head: Array, tail: Array, m: int) -> None:
        self.total = total  # (P,)
        self.head = np.cumsum(head, axis=1)  # prod[:, :edge]
        self.tail = np.cumsum(tail[:, ::-1], axis=1)  # prod[:, m−edge:], summed from the end
        self.m = m

    def window(self, lo: npt.NDArray[np.int64], hi: int) -> Array:
        v = self.total.copy()
        has_head = lo > 0
        if np.any(has_head):
            v -= np.where(has_head, np.take_along_axis(self.head, np.maximum(lo - 1, 0)[:, None], axis=1)[:, 0], 0.0)
        cut = self.m - 1 - hi  # terms after hi
        if cut > 0:
            v -= self.tail[:, cut - 1]
        return v


def _products(e: Array, d: Array, lags: int) -> tuple[list[_ProductSums], list[_ProductSums], _ProductSums]:
    """The lagged-product sums that every ADF Gram matrix of these residuals is made of."""
    P, m = d.shape
    edge = min(lags + 2, m)
    dd = []
    for k in range(lags + 1):  # prod[s] = d[s]·d[s−k], s ≥ k (0 before)
        total = np.einsum("pn,pn->p", d[:, k:], d[:, : m - k])
        head = np.zeros((P, edge))
        head[:, k:] = d[:, k:edge] * d[:, : edge - k]
        tail = np.zeros((P, edge))
        first = max(m - edge, k)  # short series: the tail may reach back before s = k
        tail[:, first - (m - edge) :] = d[:, first:] * d[:, first - k : m - k]
        dd.append(_ProductSums(total, head, tail, m))
    ed = []
    for i in range(lags + 1):  # prod[s] = e[s+i]·d[s], s ≤ m−1−i (0 after: those terms are never summed)
        total = np.einsum("pn,pn->p", e[:, i:m], d[:, : m - i])
        head = e[:, i : i + edge] * d[:, :edge]
        tail = np.zeros((P, edge))
        tail[:, : edge - i] = e[:, m - edge + i : m] * d[:, m - edge : m - i]
        ed.append(_ProductSums(total, head, tail, m))
    e2 = e[:, :m] * e[:, :m]
    ee = _ProductSums(np.einsum("pn,pn->p", e[:, :m], e[:, :m]), e2[:, :edge], e2[:, m - edge :], m)
    return dd, ed, ee


def _gram(sums: tuple[list[_ProductSums], list[_ProductSums], _ProductSums], t0: npt.NDArray[np.int64],
          lags: int) -> tuple[Array, Array, Array]:  # fmt: skip
    """Per row p, over t = t0_p..m−1: G = X'X, c = X'y, yy = y'y for X = [e_t, Δe_{t−1}, …, Δe_{t−lags}], y = Δe_t."""
    dd, ed, ee = sums
    m = ee.m
    P = t0.size
    K = lags + 1
    G = np.empty((P, K, K))
    c = np.empty((P, K))
    # Σ_t e[t]·d[t−i] = Σ_{s=t0−i}^{m−1−i} e[s+i]·d[s];  Σ_t d[t−i]·d[t−j] = Σ_{s=t0−i}^{m−1−i} d[s]·d[s−(j−i)]
    c[:, 0] = ed[0].window(t0, m - 1)
    for i in range(1, K):
        G[:, 0, i] = G[:, i, 0] = ed[i].window(t0 - i, m - 1 - i)
    G[:, 0, 0] = ee.window(t0, m - 1)
    yy = dd[0].window(t0, m - 1)
    for i in range(1, K):
        c[:, i] = dd[i].window(t0, m - 1)
        for j in range(i, K):
            G[:, i, j] = G[:, j, i] = dd[j - i].window(t0 - i, m - 1 - i)
    return G, c, yy


def adf_no_constant(
    e: Array, max_lag: int | None = None, autolag: str | None = "aic"
) -> tuple[Array, npt.NDArray[np.int64]]:
    """ADF t-statistics (regression "n") of each row of `e` (P, n), and the lags used; see module docstring."""
    P, n = e.shape
    L = default_max_lag(n) if max_lag is None else max_lag
    if L < 0 or n // 2 - 1 < L:
        raise ValueError(f"max_lag must be in [0, {n // 2 - 1}] for {n} points, got {L}")
    d = np.diff(e, axis=1)
    m = d.shape[1]
    K = L + 1
    sums = _products(e, d, L)
    if autolag is None:
        lags = np.full(P, L, dtype=np.int64)
    elif autolag == "aic":
        G, c, yy = _gram(sums, np.full(P, L, dtype=np.int64), L)
        chol = np.linalg.cholesky(G)
        w = np.linalg.solve(chol, c[:, :, None])[:, :, 0]
        ssr = yy[:, None] - np.cumsum(w * w, axis=1)  # column j−1: the fit with the first j regressors
        nobs = m - L
        with np.errstate(divide="ignore", invalid="ignore"):  # an exact fit: −inf, chosen, as statsmodels does
            aic = nobs * (_LOG2PI + np.log(ssr / nobs) + 1.0) + 2.0 * np.arange(1, K + 1)
        lags = np.argmin(aic, axis=1).astype(np.int64)  # first minimum: the smaller lag on a tie
    else:
        raise ValueError(f"autolag must be 'aic' or None, got {autolag!r}")
    G, c, yy = _gram(sums, lags, L)
    # columns past a row's own lag are replaced by an identity block: their coefficients solve to 0 and
    # the level coefficient and its variance are those of the smaller regression
    unused = np.arange(K)[None, :] > lags[:, None]
    both = unused[:, :, None] | unused[:, None, :]
    G[both] = 0.0
    G[:, np.arange(K), np.arange(K)] = np.where(unused, 1.0, G[:, np.arange(K), np.arange(K)])
    c[unused] = 0.0
    inv = np.linalg.inv(G)
    coef = np.einsum("pij,pj->pi", inv, c)
    ssr = yy - np.einsum("pi,pi->p", coef, c)
    dof = (m - lags) - (lags + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coef[:, 0] / np.sqrt(ssr / dof * inv[:, 0, 0])
    return t, lags


def mackinnon_p(stats: Array, n_vars: int = 2) -> Array:
    """MacKinnon (1994/2010) approximate p-values, trend "c" (statsmodels' `mackinnonp`, element-wise)."""
    return np.array([float(mackinnonp(float(s), regression="c", N=n_vars)) for s in np.ravel(stats)])


@dataclass(frozen=True, slots=True)
class EngleGranger:
    """Engle–Granger test of y on x (`coint(y, x, trend="c")`): H0 no cointegration."""

    statistic: float
    p_value: float
    critical_values: dict[str, float]  # "1%", "5%", "10%" (MacKinnon 2010, nobs − 1)
    beta: float
    alpha: float
    lags_used: int
    nobs: int

    def cointegrated_at(self, level: str = "5%") -> bool:
        return self.statistic < self.critical_values[level]


def engle_granger_many(
    y: Array, x: Array, max_lag: int | None = None, autolag: str | None = "aic"
) -> dict[str, npt.NDArray[Any]]:
    """Engle–Granger of each row y[p] on x[p] ((P, n) arrays): beta, alpha, stat, p_value, lags, r2, resid."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    beta, alpha, resid, r2 = ols_residuals(y, x)
    perfect = ~(r2 < 1.0 - 100.0 * _SQRTEPS)
    stat, lags = adf_no_constant(resid, max_lag, autolag)
    stat = np.where(perfect, -np.inf, stat)
    return {"beta": beta, "alpha": alpha, "stat": stat, "p_value": mackinnon_p(stat), "lags": lags, "r2": r2,
            "resid": resid}  # fmt: skip


def engle_granger(
    y: npt.ArrayLike, x: npt.ArrayLike, max_lag: int | None = None, autolag: str | None = "aic"
) -> EngleGranger:
    """One pair, y on x; ValueError when the series are too short or unequal."""
    ya = np.asarray(y, dtype=np.float64).ravel()
    xa = np.asarray(x, dtype=np.float64).ravel()
    if ya.size != xa.size:
        raise ValueError(f"y has {ya.size} points but x has {xa.size}")
    if ya.size < MIN_POINTS:
        raise ValueError(f"Engle–Granger needs at least {MIN_POINTS} points, got {ya.size}")
    if not (np.all(np.isfinite(ya)) and np.all(np.isfinite(xa))):
        raise ValueError("the series must be finite")
    r = engle_granger_many(ya[None, :], xa[None, :], max_lag, autolag)
    crit = mackinnoncrit(N=2, regression="c", nobs=ya.size - 1)
    return EngleGranger(float(r["stat"][0]), float(r["p_value"][0]),
                        {"1%": float(crit[0]), "5%": float(crit[1]), "10%": float(crit[2])},
                        float(r["beta"][0]), float(r["alpha"][0]), int(r["lags"][0]), ya.size)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EngleGrangerBoth:
    y_on_x: EngleGranger
    x_on_y: EngleGranger

    @property
    def best(self) -> EngleGranger:
        """The direction with the smaller p-value (the y-on-x one on a tie)."""
        return self.x_on_y if self.x_on_y.p_value < self.y_on_x.p_value else self.y_on_x


def engle_granger_both(y: npt.ArrayLike, x: npt.ArrayLike, max_lag: int | None = None) -> EngleGrangerBoth:
    """The two-step test in both directions (the residual-based test is not symmetric in y and x)."""
    return EngleGrangerBoth(engle_granger(y, x, max_lag), engle_granger(x, y, max_lag))
