"""Spread z-score and leg-return correlation over sliding windows, O(1) per observation.

The spread s = y − βx − α is formed by the caller from whichever β source it trusts (OLS, Kalman, Huber,
Theil–Sen); this module only standardises it, so every source gets the same, true z-score:
z = (s − mean) / std over the last `window` spreads, the current one included, std with ddof=1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from qs_analytics.moments import RollingCoMoments, RollingMoments


def spread(y: float, x: float, beta: float, alpha: float) -> float:
    """The spread of a hedge fit: y − β·x − α. The only place it is written, so every caller rounds alike."""
    return y - beta * x - alpha


class ZScore(NamedTuple):
    z: float  # nan when the window's spreads are all equal (std 0)
    mean: float
    std: float
    n: int


class SpreadZScore:
    """Rolling z-score of the spread; None until `min_obs` spreads (default: the full window)."""

    __slots__ = ("_m", "min_obs")

    def __init__(self, window: int, window_ms: int | None = None, min_obs: int | None = None) -> None:
        if window < 2:
            raise ValueError(f"z-score window must be >= 2, got {window}")
        self._m = RollingMoments(window, window_ms)
        self.min_obs = min_obs if min_obs is not None else (window if window_ms is None else min(3, window))
        if not 2 <= self.min_obs <= window:
            raise ValueError(f"min_obs must be in [2, window], got {self.min_obs}")

    @property
    def n(self) -> int:
        return self._m.n

    def values(self) -> list[float]:
        return self._m.values()

    def span_ms(self) -> int:
        return self._m.span_ms()

    def needs(self) -> int:
        return max(0, self.min_obs - self._m.n)

    def update(self, s: float, ts_ms: int = 0) -> ZScore | None:
        m = self._m
        m.push(s, ts_ms)
        n = m.n
        if n < self.min_obs:
            return None
        mean = m._k + m._mean
        m2 = m._m2
        std = math.sqrt(m2 / (n - 1)) if m2 > 0.0 else 0.0
        # std at rounding level of the spread means the spreads were equal: z is undefined, not huge
        z = (s - mean) / std if std > 1e-14 * (abs(mean) + abs(s)) else math.nan
        return ZScore(z, mean, std, n)


class RollingCorrelation:
    """Pearson correlation of the two legs' log returns over the last `window` returns.

    With as-of aligned ticks only one leg moves per observation, so tick-level correlation is biased
    towards zero (the Epps effect); feed it sampled prices (e.g. one observation per second) when the
    correlation itself is what matters.
    """

    __slots__ = ("_c", "_px", "_py", "min_obs")

    def __init__(self, window: int, window_ms: int | None = None, min_obs: int | None = None) -> None:
        if window < 2:
            raise ValueError(f"correlation window must be >= 2, got {window}")
        self._c = RollingCoMoments(window, window_ms)
        self._px = math.nan
        self._py = math.nan
        self.min_obs = min_obs if min_obs is not None else (window if window_ms is None else min(3, window))

    @property
    def n(self) -> int:
        return self._c.n

    def needs(self) -> int:
        return max(0, self.min_obs - self._c.n + (1 if self._px != self._px else 0))

    def update(self, x: float, y: float, ts_ms: int = 0) -> float | None:
        """Add prices (not returns); returns the correlation, nan if a leg did not move in the window."""
        px = self._px
        py = self._py
        if px != px:  # first prices: no return yet
            self._px = x
            self._py = y
            return None
        # as-of aligned ticks move one leg at a time: skip the log of the leg that did not move
        rx = 0.0 if x == px else math.log(x / px)
        ry = 0.0 if y == py else math.log(y / py)
        self._px = x
        self._py = y
        c = self._c
        c.push(rx, ry, ts_ms)
        if len(c._buf) < self.min_obs:
            return None
        sxx = c._sxx
        syy = c._syy
        if sxx > 0.0 and syy > 0.0:
            return c._sxy / math.sqrt(sxx * syy)
        return math.nan
