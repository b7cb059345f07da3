"""Per-symbol statistics from trades, and top-of-book metrics from book tickers.

Definitions (all over the last `window` trades, O(1) per trade):
* momentum_bps_per_min: slope of the OLS of ln(price) on time in minutes, ×1e4.
* price_z: (p − mean p) / std p, std ddof=1.
* vol: std (ddof=1) of the per-trade log returns. Per-trade figures depend on how busy the tape is, so
  vol_annualised is the realised volatility per unit of time instead: sqrt(Σ r² / elapsed years) with a
  365-day year (crypto trades around the clock), elapsed = time spanned by the window's returns.
* vwap: Σ p·q / Σ q over the window (with fsum recomputes, since p·q sums are plain running sums).
* last_return: ln(p_t / p_{t−1}).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from qs_analytics.moments import RollingCoMoments, RollingMoments

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class SymbolSnapshot:
    price: float
    n: int
    last_return: float  # nan on the first trade
    momentum_bps_per_min: float  # nan until 2 trades at different times
    price_z: float
    vol: float
    vol_annualised: float
    vwap: float


class SymbolStats:
    """Rolling statistics of one symbol's trades; every `update` returns a snapshot (nan where undefined)."""

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.window = window
        self._trend = RollingCoMoments(window)  # (minutes since t0, ln p)
        self._price = RollingMoments(window)
        self._ret = RollingMoments(window)
        self._ret_ts: deque[int] = deque(maxlen=window + 1)  # trade times spanned by the window's returns
        self._pq: deque[tuple[float, float]] = deque()
        self._sum_pq = 0.0
        self._sum_q = 0.0
        self._since = 0
        self._t0: int | None = None
        self._last_p = math.nan
        self._last_r = math.nan  # the last trade's log return
        self._sum_r2 = RollingMoments(window)  # mean of r² × n = Σ r²

    def update(self, ts_ms: int, price: float, qty: float = 1.0) -> SymbolSnapshot:
        """Add a trade and return the snapshot after it (`push` + `snapshot`)."""
        self.push(ts_ms, price, qty)
        return self.snapshot()

    def push(self, ts_ms: int, price: float, qty: float = 1.0) -> None:
        """Add a trade without building a snapshot: a consumer that writes only the newest one per batch asks for
        it once (`snapshot`), not on every trade."""
        if self._t0 is None:
            self._t0 = ts_ms
        self._trend.push((ts_ms - self._t0) / 60_000.0, math.log(price))
        self._price.push(price)
        last = self._last_p
        if last == last:
            r = math.log(price / last)  # not lp − ln(last): that difference of ~11s loses 8 digits of a 1e-7 return
            self._ret.push(r)
            self._sum_r2.push(r * r)
            self._last_r = r
        self._ret_ts.append(ts_ms)
        self._last_p = price
        self._push_vwap(price, qty)

    def snapshot(self) -> SymbolSnapshot:
        """The statistics after the last trade pushed (nan where undefined)."""
        nan = math.nan
        t = self._trend
        mom = t.sxy / t.sxx * 1e4 if t.sxx > 0.0 else nan
        pm = self._price
        price = self._last_p
        std = math.sqrt(pm.var(1)) if pm.n > 1 else nan
        pz = (price - pm.mean) / std if std > 0.0 else nan
        vol = math.sqrt(self._ret.var(1)) if self._ret.n > 1 else nan
        span_ms = self._ret_ts[-1] - self._ret_ts[0] if len(self._ret_ts) > 1 else 0
        sum_r2 = self._sum_r2.mean * self._sum_r2.n
        vol_ann = math.sqrt(sum_r2 / (span_ms / MS_PER_YEAR)) if span_ms > 0 else nan
        vwap = self._sum_pq / self._sum_q if self._sum_q > 0.0 else nan
        return SymbolSnapshot(price, pm.n, self._last_r, mom, pz, vol, vol_ann, vwap)

    def _push_vwap(self, price: float, qty: float) -> None:
        self._pq.append((price, qty))
        self._sum_pq += price * qty
        self._sum_q += qty
        if len(self._pq) > self.window:
            po, qo = self._pq.popleft()
            self._sum_pq -= po * qo
            self._sum_q -= qo
        self._since += 1
        if self._since >= self.window:
            self._since = 0
            self._sum_pq = math.fsum(p * q for p, q in self._pq)
            self._sum_q = math.fsum(q for _, q in self._pq)


@dataclass(frozen=True, slots=True)
class BookMetrics:
    mid: float
    spread_bps: float  # (ask − bid) / mid × 1e4; negative on a crossed book
    microprice: float  # size-weighted towards the side more likely to trade next; mid when both sizes are 0
    imbalance: float  # (bid_qty − ask_qty) / (bid_qty + ask_qty) in [−1, 1]; nan when both sizes are 0


def book_metrics(bid: float | str, bid_qty: float | str, ask: float | str, ask_qty: float | str) -> BookMetrics:
    """Top-of-book metrics; accepts Binance's decimal text as well as floats."""
    b, bq, a, aq = float(bid), float(bid_qty), float(ask), float(ask_qty)
    mid = 0.5 * (b + a)
    spread_bps = (a - b) / mid * 1e4 if mid > 0.0 else math.nan
    tot = bq + aq
    if tot > 0.0:
        return BookMetrics(mid, spread_bps, (b * aq + a * bq) / tot, (bq - aq) / tot)
    return BookMetrics(mid, spread_bps, mid, math.nan)
