"""Is the spread mean-reverting? Augmented Dickey–Fuller test and the AR(1) half-life.

ADF lag choice (bounded so that a long window cannot make one test cost seconds, and a short one cannot
leave the regression without degrees of freedom):
    maxlag = min(ceil(12·(n/100)^¼), n//3 − 2, MAX_LAG_CAP)   (Schwert's rule, then two caps)
then statsmodels picks the lag ≤ maxlag by `autolag` (AIC by default). Fewer than `MIN_ADF_POINTS` points,
or a constant series, give a result whose verdict says so instead of raising.

Half-life: OLS of Δs_t on s_{t−1} with a constant, Δs_t = a + b·s_{t−1} + ε, i.e. the discrete AR(1)
s_t = a + (1 + b)·s_{t−1} + ε. A shock decays by the factor (1 + b) per observation, so it halves after
    half_life = −ln 2 / ln(1 + b)   observations   (exact for the discrete model; −ln 2 / b is its
continuous-time/OU approximation, close only when |b| is small). b ≥ 0: no mean reversion, half_life = inf;
b ≤ −1: the spread overshoots every step, half_life = nan.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.stattools import adfuller

MIN_ADF_POINTS = 20
MAX_LAG_CAP = 24
_HAS_RESULT_OBJECT = "result_object" in inspect.signature(adfuller).parameters


@dataclass(frozen=True, slots=True)
class ADFResult:
    statistic: float
    p_value: float
    critical_values: dict[str, float] = field(default_factory=dict)  # keys "1%", "5%", "10%"
    lags_used: int = 0
    nobs: int = 0
    verdict: str = ""
    needs: int = 0  # more points needed before the test can run; 0 when it ran

    @property
    def ran(self) -> bool:
        return math.isfinite(self.statistic)

    def stationary_at(self, level: Literal["1%", "5%", "10%"] = "5%") -> bool:
        return self.ran and self.statistic < self.critical_values[level]


def adf_max_lag(n: int) -> int:
    """The bounded Schwert lag ceiling for n points (see module docstring)."""
    return max(0, min(math.ceil(12.0 * (n / 100.0) ** 0.25), n // 3 - 2, MAX_LAG_CAP))


def _verdict(stat: float, crit: dict[str, float]) -> str:
    for level in ("1%", "5%", "10%"):
        if stat < crit[level]:
            return f"Stationary at {level}: the spread mean-reverts"
    return "Not stationary: no evidence of mean reversion"


def adf_test(
    spread: npt.ArrayLike,
    max_lag: int | None = None,
    autolag: Literal["AIC", "BIC", "t-stat"] | None = "AIC",
    regression: Literal["c", "ct", "ctt", "n"] = "c",
) -> ADFResult:
    """ADF test of a unit root in `spread` (H0: not mean-reverting); never raises on short/constant input."""
    s = np.asarray(spread, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    n = s.size
    nan = math.nan
    if n < MIN_ADF_POINTS:
        short = MIN_ADF_POINTS - n
        return ADFResult(nan, nan, nobs=n, needs=short, verdict=f"Not enough data: needs {short} more points")
    if s.max() == s.min():
        return ADFResult(nan, nan, nobs=n, verdict="Constant spread: the test is undefined")
    ntrend = 0 if regression == "n" else len(regression)
    lag = adf_max_lag(n) if max_lag is None else max(0, min(max_lag, n // 2 - ntrend - 1))
    kwargs: dict[str, Any] = {"maxlag": lag, "autolag": autolag, "regression": regression}
    if _HAS_RESULT_OBJECT:
        kwargs["result_object"] = False
    with warnings.catch_warnings():
        # a perfectly fitting lag regression divides by zero inside statsmodels; the verdict still stands
        warnings.simplefilter("ignore", RuntimeWarning)
        out = adfuller(s, **kwargs)
    stat, pvalue, usedlag, nobs, crit = out[0], out[1], out[2], out[3], out[4]
    crit_f = {k: float(v) for k, v in crit.items()}
    return ADFResult(float(stat), float(pvalue), crit_f, int(usedlag), int(nobs), _verdict(float(stat), crit_f))


@dataclass(frozen=True, slots=True)
class HalfLife:
    half_life: float  # in observations; inf when b >= 0, nan when b <= -1 or undefined
    b: float  # slope of Δs on s₋₁
    a: float  # intercept
    n: int  # regression observations (points − 1)


def half_life(spread: npt.ArrayLike) -> HalfLife | None:
    """AR(1) half-life of mean reversion; None with fewer than 3 points."""
    s = np.asarray(spread, dtype=np.float64).ravel()
    if s.size < 3:
        return None
    lag = s[:-1]
    d = np.diff(s)
    lc = lag - lag.mean()
    sxx = float(lc @ lc)
    if not sxx > 0.0:
        return HalfLife(math.nan, math.nan, math.nan, d.size)
    b = float(lc @ (d - d.mean())) / sxx
    a = float(d.mean() - b * lag.mean())
    if b >= 0.0:
        hl = math.inf
    elif b <= -1.0:
        hl = math.nan
    else:
        hl = -math.log(2.0) / math.log1p(b)
    return HalfLife(hl, b, a, d.size)
