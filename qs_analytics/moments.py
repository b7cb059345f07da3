"""Sliding-window first and second moments, O(1) per observation and numerically stable.

Why not running sums of x and x²: at BTC-level prices (x ≈ 60,000) a quiet window moves by a cent, so
Σx² ≈ 3.6e9·n while the quantity we need, Σ(x − x̄)², is ≈ 1e-4·n: the subtraction loses all thirteen
significant digits. Two things keep these classes exact to a few ulps instead:

* When a sum of squares collapses (see `_DROP`) it is recomputed at once, so a quiet window after a
  volatile one does not inherit the volatile one's rounding residue.
* Every value is stored relative to a shift K (the window mean at the last exact recompute), so the
  running means are small numbers whose rounding error is relative to the cent-level moves, not to 60,000.
* Centred co-moments are updated Welford-style (add, remove, or one combined replace when the window is
  full), and every `recompute_every` updates (default: the window length, so O(1) amortised) they are
  recomputed exactly from the window buffer with `math.fsum`, which resets any drift.

Both classes keep the raw values in a deque, so a window can be bounded by count, by observation time
(`window_ms`) or both. Hot paths avoid attribute-heavy helpers on purpose: this code runs on every tick.
"""

from __future__ import annotations

import math
from collections import deque

_DROP = 1e-4
"""Rounding residue left in a running sum of squares is ~eps × the largest value it held since the last
exact recompute. When the sum falls below _DROP of that peak (a volatile window turning quiet, or a leg
that stops trading), that residue would no longer be negligible, so the sums are recomputed at once."""


class RollingMoments:
    """Mean and centred sum of squares of one series over a sliding window."""

    __slots__ = ("window", "window_ms", "recompute_every", "_buf", "_k", "_mean", "_m2", "_since", "_hi")

    def __init__(self, window: int, window_ms: int | None = None, recompute_every: int | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if window_ms is not None and window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms}")
        self.window = window
        self.window_ms = window_ms
        self.recompute_every = recompute_every or max(window, 16)
        self._buf: deque[tuple[float, int]] = deque()
        self._k = 0.0  # shift: values are tracked as v - k
        self._mean = 0.0  # mean of (v - k)
        self._m2 = 0.0  # Σ (v - mean)²
        self._since = 0
        self._hi = 0.0  # largest m2 since the last recompute (see `_DROP`)

    @property
    def n(self) -> int:
        return len(self._buf)

    @property
    def mean(self) -> float:
        return self._k + self._mean

    @property
    def m2(self) -> float:
        """Centred sum of squares Σ(v − v̄)², never negative."""
        return self._m2 if self._m2 > 0.0 else 0.0

    def values(self) -> list[float]:
        return [v for v, _ in self._buf]

    def span_ms(self) -> int:
        """Observation time from the oldest to the newest value in the window."""
        return self._buf[-1][1] - self._buf[0][1] if self._buf else 0

    def var(self, ddof: int = 1) -> float:
        n = len(self._buf)
        return self.m2 / (n - ddof) if n > ddof else math.nan

    def push(self, v: float, ts_ms: int = 0) -> None:
        buf = self._buf
        if not buf:
            self._k = v  # fresh window: shift to the first value so the running mean starts at 0
            self._mean = self._m2 = 0.0
        k = self._k
        if self.window_ms is None and len(buf) == self.window:
            old = buf.popleft()[0]
            buf.append((v, ts_ms))
            d = v - old
            mean0 = self._mean
            mean1 = mean0 + d / len(buf)
            self._mean = mean1
            self._m2 += d * ((v - k - mean1) + (old - k - mean0))
        else:
            buf.append((v, ts_ms))
            vs = v - k
            d = vs - self._mean
            self._mean += d / len(buf)
            self._m2 += d * (vs - self._mean)
            if self.window_ms is not None:
                cutoff = ts_ms - self.window_ms
                while len(buf) > self.window or buf[0][1] <= cutoff:
                    self._remove(buf.popleft()[0])
        self._since += 1
        m2 = self._m2
        if m2 > self._hi:
            self._hi = m2
        if self._since >= self.recompute_every or m2 < self._hi * _DROP:
            self.recompute()

    def _remove(self, old: float) -> None:
        n = len(self._buf)
        if n == 0:
            self._mean = 0.0
            self._m2 = 0.0
            return
        os_ = old - self._k
        d = os_ - self._mean
        self._mean -= d / n
        self._m2 -= d * (os_ - self._mean)

    def recompute(self) -> None:
        """Exact two-pass recompute from the buffer; also moves the shift to the current mean."""
        self._since = 0
        vals = [v for v, _ in self._buf]
        n = len(vals)
        if n == 0:
            self._k = self._mean = self._m2 = self._hi = 0.0
            return
        k = math.fsum(vals) / n
        dev = [v - k for v in vals]
        corr = math.fsum(dev) / n
        self._k = k
        self._mean = corr
        self._m2 = self._hi = math.fsum([(d - corr) * (d - corr) for d in dev])


class RollingCoMoments:
    """Means and centred co-moments Sxx, Syy, Sxy of a pair of series over a sliding window."""

    __slots__ = (
        "window", "window_ms", "recompute_every", "_buf", "_kx", "_ky",
        "_mx", "_my", "_sxx", "_syy", "_sxy", "_since", "_hx", "_hy",
    )  # fmt: skip

    def __init__(self, window: int, window_ms: int | None = None, recompute_every: int | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if window_ms is not None and window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms}")
        self.window = window
        self.window_ms = window_ms
        self.recompute_every = recompute_every or max(window, 16)
        self._buf: deque[tuple[float, float, int]] = deque()
        self._kx = self._ky = 0.0
        self._mx = self._my = 0.0
        self._sxx = self._syy = self._sxy = 0.0
        self._since = 0
        self._hx = self._hy = 0.0  # largest Sxx, Syy since the last recompute (see `_DROP`)

    @property
    def n(self) -> int:
        return len(self._buf)

    @property
    def mean_x(self) -> float:
        return self._kx + self._mx

    @property
    def mean_y(self) -> float:
        return self._ky + self._my

    @property
    def sxx(self) -> float:
        return self._sxx if self._sxx > 0.0 else 0.0

    @property
    def syy(self) -> float:
        return self._syy if self._syy > 0.0 else 0.0

    @property
    def sxy(self) -> float:
        return self._sxy

    def pairs(self) -> list[tuple[float, float]]:
        return [(x, y) for x, y, _ in self._buf]

    def push(self, x: float, y: float, ts_ms: int = 0) -> None:
        buf = self._buf
        if not buf:
            self._kx, self._ky = x, y  # fresh window: shift to the first point
            self._mx = self._my = self._sxx = self._syy = self._sxy = 0.0
        kx = self._kx
        ky = self._ky
        if self.window_ms is None and len(buf) == self.window:
            xo, yo, _ = buf.popleft()
            buf.append((x, y, ts_ms))
            n = len(buf)
            dx = x - xo
            dy = y - yo
            mx0 = self._mx
            my0 = self._my
            mx1 = mx0 + dx / n
            my1 = my0 + dy / n
            self._mx = mx1
            self._my = my1
            ex = x - kx - mx1  # new point's deviation from the new mean
            ey = y - ky - my1
            fx = xo - kx - mx0  # old point's deviation from the old mean
            fy = yo - ky - my0
            self._sxx += dx * (ex + fx)
            self._syy += dy * (ey + fy)
            self._sxy += dx * ey + dy * fx
        else:
            buf.append((x, y, ts_ms))
            n = len(buf)
            xs = x - kx
            ys = y - ky
            dx = xs - self._mx
            dy = ys - self._my
            self._mx += dx / n
            self._my += dy / n
            ey = ys - self._my
            self._sxx += dx * (xs - self._mx)
            self._syy += dy * ey
            self._sxy += dx * ey
            if self.window_ms is not None:
                cutoff = ts_ms - self.window_ms
                while len(buf) > self.window or buf[0][2] <= cutoff:
                    xo, yo, _ = buf.popleft()
                    self._remove(xo, yo)
        self._since += 1
        sxx = self._sxx
        syy = self._syy
        if sxx > self._hx:
            self._hx = sxx
        if syy > self._hy:
            self._hy = syy
        if self._since >= self.recompute_every or sxx < self._hx * _DROP or syy < self._hy * _DROP:
            self.recompute()

    def _remove(self, xo: float, yo: float) -> None:
        n = len(self._buf)
        if n == 0:
            self._mx = self._my = self._sxx = self._syy = self._sxy = 0.0
            return
        xs = xo - self._kx
        ys = yo - self._ky
        dx = xs - self._mx
        dy = ys - self._my
        self._mx -= dx / n
        self._my -= dy / n
        ey = ys - self._my
        self._sxx -= dx * (xs - self._mx)
        self._syy -= dy * ey
        self._sxy -= dx * ey

    def recompute(self) -> None:
        """Exact two-pass recompute from the buffer; also moves the shifts to the current means."""
        self._since = 0
        n = len(self._buf)
        if n == 0:
            self._kx = self._ky = self._mx = self._my = 0.0
            self._sxx = self._syy = self._sxy = self._hx = self._hy = 0.0
            return
        xs = [x for x, _, _ in self._buf]
        ys = [y for _, y, _ in self._buf]
        kx = math.fsum(xs) / n
        ky = math.fsum(ys) / n
        dx = [x - kx for x in xs]
        dy = [y - ky for y in ys]
        cx = math.fsum(dx) / n
        cy = math.fsum(dy) / n
        ex = [d - cx for d in dx]
        ey = [d - cy for d in dy]
        self._kx, self._ky, self._mx, self._my = kx, ky, cx, cy
        self._sxx = math.fsum([a * a for a in ex])
        self._syy = math.fsum([b * b for b in ey])
        self._sxy = math.fsum([a * b for a, b in zip(ex, ey, strict=True)])
        self._hx = self._sxx
        self._hy = self._syy

    def x_is_constant(self) -> bool:
        """Exact check, O(n): used only when Sxx is already at rounding level."""
        if not self._buf:
            return True
        first = self._buf[0][0]
        return all(x == first for x, _, _ in self._buf)
