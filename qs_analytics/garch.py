"""GARCH(1,1) of one symbol's log returns with the `arch` package.

Model (arch's `arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal")`), on returns in per cent,
r_t = 100 · ln(c_t / c_{t−1}):
    r_t = μ + ε_t,  ε_t = σ_t · e_t,  e_t ~ N(0, 1),  σ²_t = ω + α · ε²_{t−1} + β · σ²_{t−1}.
persistence = α + β (a shock's share left after one step; ≥ 1 means no finite long-run variance).
sigma_now is the fitted σ of the last observed return; sigma_h the forecast σ of the return h steps ahead
(sigma_next = sigma_1); cum_sigma_h = √(Σ_{i≤h} σ²_i), the σ of the sum of the next h returns. All σ are
in the ×100 units; the `_ann` versions multiply the per-step σ by √(periods per year), still in per cent.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

HORIZONS = (1, 5, 60)
MIN_RETURNS = 30  # below this a 4-parameter likelihood says nothing


@dataclass(frozen=True, slots=True)
class GarchFit:
    mu: float
    omega: float
    alpha: float
    beta: float
    persistence: float
    sigma_now: float
    sigma_next: float
    sigma_5: float
    sigma_60: float
    cum_sigma_5: float
    cum_sigma_60: float
    sigma_next_ann: float
    sigma_5_ann: float
    sigma_60_ann: float
    periods_per_year: float
    loglik: float
    nobs: int
    converged: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_returns_pct(close: npt.ArrayLike) -> npt.NDArray[np.float64]:
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 1 or not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("closes must be a 1-d series of finite prices > 0")
    return 100.0 * np.diff(np.log(c))


def fit_garch(close: npt.ArrayLike, periods_per_year: float) -> GarchFit:
    """Fit GARCH(1,1) to the closes' ×100 log returns; ValueError if there are too few or they are constant."""
    from arch import arch_model  # heavy import, only where a fit is asked for

    r = log_returns_pct(close)
    if r.size < MIN_RETURNS:
        raise ValueError(f"GARCH needs at least {MIN_RETURNS} returns ({MIN_RETURNS + 1} closes), got {r.size}")
    if float(np.ptp(r)) <= 1e-9 * float(np.max(np.abs(r))):  # rounding noise of a constant rate of return
        raise ValueError("the returns are constant: GARCH is undefined")
    am = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    # a fit at the α + β = 1 boundary warns; `converged` reports it instead of failing the caller. record=True:
    # arch sets its own "always" filter for its ConvergenceWarning, which would override a plain "ignore"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        res = am.fit(disp="off")
        var = res.forecast(horizon=max(HORIZONS), reindex=False).variance.to_numpy()[-1]
    p = res.params
    sig = np.sqrt(var)
    cum = np.sqrt(np.cumsum(var))
    ann = math.sqrt(periods_per_year) if periods_per_year > 0 else math.nan
    return GarchFit(
        mu=float(p["mu"]),
        omega=float(p["omega"]),
        alpha=float(p["alpha[1]"]),
        beta=float(p["beta[1]"]),
        persistence=float(p["alpha[1]"] + p["beta[1]"]),
        sigma_now=float(np.asarray(res.conditional_volatility)[-1]),
        sigma_next=float(sig[0]),
        sigma_5=float(sig[4]),
        sigma_60=float(sig[59]),
        cum_sigma_5=float(cum[4]),
        cum_sigma_60=float(cum[59]),
        sigma_next_ann=float(sig[0]) * ann,
        sigma_5_ann=float(sig[4]) * ann,
        sigma_60_ann=float(sig[59]) * ann,
        periods_per_year=periods_per_year,
        loglik=float(res.loglikelihood),
        nobs=int(r.size),
        converged=int(res.convergence_flag) == 0,
    )
