"""One pair's hedge ratio, fair value, spread, z-score and return correlation, observation by observation, with
the β source picked by name: the series the dashboard draws over candles (history, uploads, the live chart).

The definitions are the live engine's (`PairEngine`), so the chart and the worker cannot disagree on what a
spread is: β and α are the fit after this observation (for Kalman the filtered state after its update; the
prediction error before the update is the engine's `kalman_e`, not a spread), the spread is `spread.spread`
(y − β·x − α), its z-score is over the last `window` spreads (std ddof 1), and the correlation is of the legs'
log returns over `window` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from qs_analytics.kalman import KalmanHedge
from qs_analytics.ols import RollingOLS
from qs_analytics.robust import HuberFairValue, TheilSenFairValue
from qs_analytics.spread import RollingCorrelation, SpreadZScore, spread

KINDS = ("OLS", "Kalman", "Huber", "Theil-Sen")
ROBUST_REFIT_EVERY = 5  # observations between robust refits: each costs milliseconds


class HedgeRow(NamedTuple):
    """One observation's figures; nan where not defined yet (a fit still warming up, a constant window)."""

    beta: float
    alpha: float
    fair: float  # β·x + α
    spread: float
    zscore: float
    corr: float


_NAN_FIT = (math.nan, math.nan, math.nan, math.nan, math.nan)


class HedgeSeries:
    """Rolling β, α, fair value, spread, z-score and correlation of y on x; `step` adds one observation."""

    def __init__(
        self, kind: str, window: int, kalman: Mapping[str, float] | None = None,
        robust_every: int = ROBUST_REFIT_EVERY,
    ) -> None:  # fmt: skip
        """`kalman`: KalmanHedge's delta, obs_noise, init_cov (default: the live worker's, qs_analytics.defaults)."""
        if kind not in KINDS:
            raise ValueError(f"unknown regression {kind!r}; one of {', '.join(KINDS)}")
        self.kind, self.window = kind, window
        self._ols = RollingOLS(window) if kind == "OLS" else None
        self._kalman = KalmanHedge(**(kalman or {})) if kind == "Kalman" else None
        robust = max(window, 3)
        self._robust: HuberFairValue | TheilSenFairValue | None = None
        if kind == "Huber":
            self._robust = HuberFairValue(robust, refit_every_n=robust_every)
        elif kind == "Theil-Sen":
            self._robust = TheilSenFairValue(robust, refit_every_n=robust_every)
        self._z = SpreadZScore(max(window, 2))
        self._corr = RollingCorrelation(max(window, 2))

    def needs_fit(self) -> int:
        """Observations still missing before the first fair value."""
        if self._ols is not None:
            return self._ols.needs()
        if self._kalman is not None:
            return 0 if self._kalman.n else 1  # warm from the first observation, as in the engine
        assert self._robust is not None
        return self._robust.needs()

    def needs(self) -> int:
        """Observations still missing before the first z-score."""
        return self.needs_fit() + self._z.needs()

    def _fit(self, ts_ms: int, y: float, x: float) -> tuple[float, float] | None:
        if self._ols is not None:
            o = self._ols.update(x, y, ts_ms)
            return None if o is None or o.reason is not None else (o.beta, o.alpha)
        if self._kalman is not None:
            k = self._kalman.update(x, y)
            return k.beta, k.alpha
        assert self._robust is not None
        r = self._robust.update(ts_ms, x, y)
        return None if r is None or not math.isfinite(r.beta) else (r.beta, r.alpha)

    def step(self, ts_ms: int, y: float, x: float) -> HedgeRow:
        fit = self._fit(ts_ms, y, x)
        c = self._corr.update(x, y, ts_ms)
        corr = math.nan if c is None else c
        if fit is None:
            return HedgeRow(*_NAN_FIT, corr)
        beta, alpha = fit
        s = spread(y, x, beta, alpha)
        zs = self._z.update(s, ts_ms)
        return HedgeRow(beta, alpha, beta * x + alpha, s, math.nan if zs is None else zs.z, corr)
