"""Robust fair-value regressions (Huber, Theil–Sen) refitted on a schedule over a sliding window.

These fits cost milliseconds, so they run every `refit_every_n` observations or once `refit_every_ms` of
observation time has passed since the last fit (the caller passes time in; there is no clock here), and
the last fit serves the observations in between.

Both fits run on standardised data, x' = (x − x̄)/sx and y' = (y − ȳ)/sy, and the coefficients are mapped
back. Unscaled, L-BFGS-B on a design column of ~60,000 sees a Hessian with a condition number ~1e9 and
stops far from the optimum (or warns); scaled, it converges in a handful of iterations. One consequence:
Huber's L2 penalty `alpha` applies to the standardised slope, which keeps it comparable across symbols.
Huber is warm-started: the previous raw-unit solution is mapped into the new window's scaling and handed to
scikit-learn as its starting point.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor, TheilSenRegressor


@dataclass(frozen=True, slots=True)
class FairValueFit:
    beta: float
    alpha: float
    n: int  # observations in the fit
    ts_ms: int  # observation time of the fit
    scale: float = math.nan  # Huber's σ in y units; nan for Theil–Sen
    converged: bool = True
    n_iter: int = 0

    def fair_value(self, x: float) -> float:
        return self.beta * x + self.alpha


class _ScheduledFit:
    """Window buffer plus the refit schedule shared by both robust regressions."""

    def __init__(self, window: int, refit_every_n: int, refit_every_ms: int | None, min_obs: int | None) -> None:
        if window < 3:
            raise ValueError(f"window must be >= 3, got {window}")
        if refit_every_n < 1:
            raise ValueError(f"refit_every_n must be >= 1, got {refit_every_n}")
        self.window = window
        self.refit_every_n = refit_every_n
        self.refit_every_ms = refit_every_ms
        self.min_obs = min_obs if min_obs is not None else window
        self._x: deque[float] = deque(maxlen=window)
        self._y: deque[float] = deque(maxlen=window)
        self._since = 0
        self._last_ts: int | None = None
        self.last: FairValueFit | None = None
        self.fits = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def n(self) -> int:
        return len(self._x)

    def needs(self) -> int:
        return max(0, self.min_obs - len(self._x))

    def due(self, ts_ms: int) -> bool:
        if len(self._x) < self.min_obs:
            return False
        if self.last is None or self._since >= self.refit_every_n:
            return True
        return (
            self.refit_every_ms is not None
            and self._last_ts is not None
            and ts_ms - self._last_ts >= self.refit_every_ms
        )

    def due_next(self, ts_ms: int) -> bool:
        """Whether the next `update` at `ts_ms` refits (the caller can publish what is ready before it)."""
        if min(len(self._x) + 1, self.window) < self.min_obs:
            return False
        if self.last is None or self._since + 1 >= self.refit_every_n:
            return True
        every = self.refit_every_ms
        return every is not None and self._last_ts is not None and ts_ms - self._last_ts >= every

    def update(self, ts_ms: int, x: float, y: float) -> FairValueFit | None:
        """Add an observation; refit if due; return the latest fit (None until the first one)."""
        self._x.append(x)
        self._y.append(y)
        self._since += 1
        # inline fast path of `due`: this runs on every tick
        maybe = self._since >= self.refit_every_n or self.last is None or self.refit_every_ms is not None
        if maybe and self.due(ts_ms):
            self.refit(ts_ms)
        return self.last

    def refit(self, ts_ms: int) -> FairValueFit | None:
        self._since = 0
        self._last_ts = ts_ms
        x = np.fromiter(self._x, dtype=np.float64, count=len(self._x))
        y = np.fromiter(self._y, dtype=np.float64, count=len(self._y))
        mx, my = float(x.mean()), float(y.mean())
        sx, sy = float(x.std()), float(y.std())
        if not sx > 0.0:
            return self.last  # x did not move: keep the previous fit rather than invent a slope
        sy = sy if sy > 0.0 else 1.0
        try:
            fit = self._fit((x - mx) / sx, (y - my) / sy, mx, my, sx, sy, ts_ms)
        except ValueError as exc:
            # scikit-learn raises when its solver ends ABNORMAL (degenerate windows, e.g. a step in y):
            # keep the previous fit and count it; a live engine must never stop on one bad window.
            self.failures += 1
            self.last_error = str(exc)
            return self.last
        self.last = fit
        self.fits += 1
        return fit

    def _fit(
        self, xs: np.ndarray, ys: np.ndarray, mx: float, my: float, sx: float, sy: float, ts_ms: int
    ) -> FairValueFit:
        raise NotImplementedError


def _unscale(b_s: float, a_s: float, mx: float, my: float, sx: float, sy: float) -> tuple[float, float]:
    beta = sy * b_s / sx
    return beta, my + sy * a_s - beta * mx


class HuberFairValue(_ScheduledFit):
    """Huber regression y = βx + α (scikit-learn `HuberRegressor`), warm-started between refits."""

    def __init__(
        self,
        window: int,
        refit_every_n: int = 100,
        refit_every_ms: int | None = None,
        epsilon: float = 1.35,
        alpha: float = 1e-4,
        max_iter: int = 200,
        min_obs: int | None = None,
    ) -> None:
        super().__init__(window, refit_every_n, refit_every_ms, min_obs)
        self._model = HuberRegressor(epsilon=epsilon, alpha=alpha, max_iter=max_iter, warm_start=True)

    def _fit(
        self, xs: np.ndarray, ys: np.ndarray, mx: float, my: float, sx: float, sy: float, ts_ms: int
    ) -> FairValueFit:
        m = self._model
        prev = self.last
        if prev is not None and math.isfinite(prev.scale):
            # previous raw-unit solution expressed in this window's scaling: the warm start
            m.coef_ = np.array([prev.beta * sx / sy])
            m.intercept_ = (prev.alpha + prev.beta * mx - my) / sy
            m.scale_ = prev.scale / sy
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported through `converged` instead
            m.fit(xs.reshape(-1, 1), ys)
        beta, alpha = _unscale(float(m.coef_[0]), float(m.intercept_), mx, my, sx, sy)
        n_iter = int(m.n_iter_)
        return FairValueFit(beta, alpha, len(xs), ts_ms, float(m.scale_) * sy, n_iter < m.max_iter, n_iter)


class TheilSenFairValue(_ScheduledFit):
    """Theil–Sen regression (scikit-learn `TheilSenRegressor`, fixed `random_state`) on the same schedule.

    Above ~140 points scikit-learn samples `max_subpopulation` pairs rather than all of them; the fixed
    seed makes that sample, and so the fit, reproducible.
    """

    def __init__(
        self,
        window: int,
        refit_every_n: int = 100,
        refit_every_ms: int | None = None,
        random_state: int = 0,
        max_subpopulation: int = 10_000,
        min_obs: int | None = None,
    ) -> None:
        super().__init__(window, refit_every_n, refit_every_ms, min_obs)
        self._model = TheilSenRegressor(random_state=random_state, max_subpopulation=max_subpopulation)

    def _fit(
        self, xs: np.ndarray, ys: np.ndarray, mx: float, my: float, sx: float, sy: float, ts_ms: int
    ) -> FairValueFit:
        m = self._model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # spatial-median iterations; result still usable
            m.fit(xs.reshape(-1, 1), ys)
        beta, alpha = _unscale(float(m.coef_[0]), float(m.intercept_), mx, my, sx, sy)
        return FairValueFit(beta, alpha, len(xs), ts_ms, n_iter=int(m.n_iter_))
