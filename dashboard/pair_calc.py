"""Pair analytics on aligned closes with the estimators the worker uses (qs_analytics), no Streamlit.

`PairCalc` keeps its estimators between reruns: closed candles are fed once, in order; the forming candle
is evaluated on a copy, so the next rerun can feed it for real once it closes. A change of settings or of
the history's start makes a fresh `PairCalc`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from qs_analytics.kalman import KalmanHedge
from qs_analytics.ols import RollingOLS
from qs_analytics.robust import HuberFairValue, TheilSenFairValue
from qs_analytics.spread import RollingCorrelation, SpreadZScore, spread

ROBUST_REFIT_EVERY = 5  # candles between robust refits: each costs milliseconds

COLUMNS = ("beta", "alpha", "fair", "spread", "zscore", "corr")


class Estimator(Protocol):
    def step(self, x: float, y: float, ts_ms: int) -> tuple[float, float] | None: ...

    def needs(self) -> int: ...


class _Fitted:
    """Any qs_analytics estimator whose `update` returns a fit with `beta` and `alpha` (or None)."""

    def __init__(self, est: Any, min_obs: int, call: Callable[[Any, float, float, int], Any]) -> None:
        self.est, self.min_obs, self.call, self.n = est, min_obs, call, 0

    def step(self, x: float, y: float, ts_ms: int) -> tuple[float, float] | None:
        self.n += 1
        fit = self.call(self.est, x, y, ts_ms)
        if fit is None or not math.isfinite(getattr(fit, "beta", math.nan)):
            return None
        return float(fit.beta), float(fit.alpha)

    def needs(self) -> int:
        return max(0, self.min_obs - self.n)


@dataclass(frozen=True)
class _Prior:
    beta: float
    alpha: float


def _kalman_prior(k: KalmanHedge, x: float, y: float, ts_ms: int) -> _Prior | None:
    """The state before this observation: its spread is the innovation, not a residual the filter just fit."""
    prior = _Prior(k.beta, k.alpha) if k.n >= 1 else None
    k.update(x, y)
    return prior


def make_estimator(kind: str, window: int, kalman: dict[str, float] | None = None) -> Estimator:
    """`kalman`: KalmanHedge's delta, obs_noise, init_cov (the worker's settings, so both agree)."""
    if kind == "OLS":
        return _Fitted(RollingOLS(window), window, lambda e, x, y, t: e.update(x, y, t))
    if kind == "Kalman":
        return _Fitted(KalmanHedge(**(kalman or {})), 2, _kalman_prior)
    if kind == "Huber":
        huber = HuberFairValue(max(window, 3), refit_every_n=ROBUST_REFIT_EVERY)
        return _Fitted(huber, huber.min_obs, lambda e, x, y, t: e.update(t, x, y))
    if kind == "Theil-Sen":
        ts = TheilSenFairValue(max(window, 3), refit_every_n=ROBUST_REFIT_EVERY)
        return _Fitted(ts, ts.min_obs, lambda e, x, y, t: e.update(t, x, y))
    raise ValueError(f"unknown regression {kind!r}")


class PairCalc:
    """Rolling β, α, fair value, spread, z-score and return correlation of y on x."""

    def __init__(self, kind: str, window: int, kalman: dict[str, float] | None = None) -> None:
        self.kind, self.window = kind, window
        self._est = make_estimator(kind, window, kalman)
        self._z = SpreadZScore(max(window, 2))
        self._corr = RollingCorrelation(max(window, 2))
        self._rows: list[tuple[float, ...]] = []
        self.last_closed: int | None = None
        self.first: int | None = None

    def needs(self) -> int:
        """Points still missing before the first z-score."""
        return self._est.needs() + self._z.needs()

    def needs_fit(self) -> int:
        """Points still missing before the first fair value."""
        return self._est.needs()

    def _step(self, ts: int, y: float, x: float) -> tuple[float, ...]:
        fit = self._est.step(x, y, ts)
        c = self._corr.update(x, y, ts)
        corr = math.nan if c is None else c
        if fit is None:
            return (ts, y, x, math.nan, math.nan, math.nan, math.nan, math.nan, corr)
        beta, alpha = fit
        s = spread(y, x, beta, alpha)
        zs = self._z.update(s, ts)
        return (ts, y, x, beta, alpha, y - s, s, math.nan if zs is None else zs.z, corr)

    def run(self, closes: pd.DataFrame, forming_open_time: int | None) -> pd.DataFrame:
        """Feed closed rows not yet seen; evaluate the forming row (if any) on a copy. Columns: see COLUMNS."""
        ts = closes["open_time"].to_numpy(dtype=np.int64)
        ys = closes["y"].to_numpy(dtype=float)
        xs = closes["x"].to_numpy(dtype=float)
        start = 0 if self.last_closed is None else int(np.searchsorted(ts, self.last_closed, side="right"))
        for i in range(start, len(ts)):
            if forming_open_time is not None and ts[i] >= forming_open_time:
                break
            self._rows.append(self._step(int(ts[i]), float(ys[i]), float(xs[i])))
            self.last_closed = int(ts[i])
            if self.first is None:
                self.first = int(ts[i])
        if len(self._rows) > 20_000:
            del self._rows[:-10_000]
        rows = self._rows
        if forming_open_time is not None and len(ts) and ts[-1] == forming_open_time:
            probe = copy.copy(self)
            probe._est, probe._z, probe._corr = copy.deepcopy((self._est, self._z, self._corr))
            rows = [*self._rows, probe._step(int(ts[-1]), float(ys[-1]), float(xs[-1]))]
        return pd.DataFrame(rows, columns=["open_time", "y", "x", *COLUMNS])


def pair_calc(store: dict[str, Any], key: tuple[Any, ...], closes: pd.DataFrame) -> PairCalc:
    """The calc held in `store` under `key`, replaced when the key changes or history no longer joins."""
    calc: PairCalc | None = store.get("calc")
    stale = calc is None or store.get("key") != key
    if not stale and calc is not None and calc.last_closed is not None and len(closes):
        first, last = int(closes["open_time"].iloc[0]), int(closes["open_time"].iloc[-1])
        stale = first > calc.last_closed or last < calc.last_closed  # no overlap: start again
    if stale:
        calc = PairCalc(key[0], key[1], dict(key[4]) if len(key) > 4 else None)
        store["calc"], store["key"] = calc, key
    assert calc is not None
    return calc
