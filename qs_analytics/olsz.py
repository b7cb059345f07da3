"""The batch command's OLS hedge and z-score, one row at a time, shared by `batch` and `backtest`.

One stepper so that the backtest's β_t, α_t and z_t are the very floats `python -m worker.analytics` writes
as `ols_beta`, `ols_alpha` and `zscore_ols` (the backtest contract says so; two copies would drift).
"""

from __future__ import annotations

from typing import NamedTuple

from qs_analytics.ols import RollingOLS
from qs_analytics.spread import SpreadZScore, spread


class OLSZRow(NamedTuple):
    """One row's OLS fit of y on x over the last N rows and the z-score of its spread; None where empty."""

    beta: float | None
    alpha: float | None
    r2: float | None
    resid_std: float | None
    spread: float | None
    z: float | None


class OLSZStepper:
    """Rolling OLS y = βx + α over N rows, spread s = y − βx − α, z over the last N spreads (ddof=1)."""

    __slots__ = ("_ols", "_zs")

    def __init__(self, window: int) -> None:
        self._ols = RollingOLS(window)
        self._zs = SpreadZScore(window)

    def update(self, x: float, y: float) -> OLSZRow:
        fit = self._ols.update(x, y)
        if fit is None or fit.reason is not None:
            return OLSZRow(None, None, None, None, None, None)
        beta, alpha = fit.beta, fit.alpha
        s = spread(y, x, beta, alpha)
        zr = self._zs.update(s)
        return OLSZRow(beta, alpha, fit.r2, fit.resid_std, s, zr.z if zr is not None else None)


def ols_z_series(x: list[float], y: list[float], window: int) -> list[OLSZRow]:
    """Every row's `OLSZRow` for the whole series (what the batch command writes, unrounded)."""
    st = OLSZStepper(window)
    return [st.update(a, b) for a, b in zip(x, y, strict=True)]
