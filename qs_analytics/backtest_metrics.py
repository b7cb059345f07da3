"""Summary of a backtest, the entry × window sweep and the walk-forward split.

Definitions (capital = the notional Q; equity E_t from `run_backtest`, E starts at 0):
* per-row return r_t = (E_t − E_{t−1}) / Q, t ≥ 1 (the strategy is dollar-neutral, so Q is the capital at risk);
* total_return = E_last / Q;
* periods_per_year P = (365.25 · 86,400 s) / median time step (crypto trades around the clock); the unit of
  `time` is told from its size as for every epoch number in the product (s, ms, µs, ns);
* sharpe = mean(r) / std(r, ddof=1) · √P; sortino = mean(r) / √(mean(min(r, 0)²)) · √P (target 0);
* max_drawdown = max_t (peak_{s≤t}(Q + E_s) − (Q + E_t)) / peak_{s≤t}(Q + E_s), a fraction of capital;
* hit_rate = share of closed trades with net P&L > 0; avg_trade = mean net P&L per closed trade;
* turnover = Σ |qty · price| over every filled leg / Q; exposure = share of rows with a position held at the
  row's close; n_trades = closed trades (a trade still open at the end is counted in `open_at_end`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from qs_analytics.backtest import BacktestParams, BacktestResult, run_backtest
from qs_analytics.backtest_beta import beta_z_columns
from qs_common.times import epoch_unit

_YEAR_S = 365.25 * 86_400.0
_UNIT_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def periods_per_year(times: Sequence[float]) -> float:
    """Rows per year from the median time step; nan with fewer than 2 rows or no forward step."""
    steps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    if not steps:
        return math.nan
    unit = epoch_unit(int(times[0]))
    return _YEAR_S / (median(steps) * _UNIT_S[unit])


def summarize(res: BacktestResult, notional: float, times: Sequence[float], start: int = 0) -> dict[str, Any]:
    """The summary metrics (see module docstring) over rows `start`..end; trades counted by entry row."""
    eq = res.equity[start:]
    q = notional
    rets = [(b - a) / q for a, b in zip(eq, eq[1:], strict=False)]
    ppy = periods_per_year(times[start:])
    nan = math.nan
    sharpe = sortino = nan
    if len(rets) >= 2:
        m = sum(rets) / len(rets)
        var = sum((r - m) ** 2 for r in rets) / (len(rets) - 1)
        down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / len(rets))
        sharpe = m / math.sqrt(var) * math.sqrt(ppy) if var > 0 else nan
        sortino = m / down * math.sqrt(ppy) if down > 0 else nan
    peak = -math.inf
    mdd = 0.0
    base = eq[0] if eq else 0.0
    for e in eq:
        cap = q + e - base
        peak = max(peak, cap)
        if peak > 0:
            mdd = max(mdd, (peak - cap) / peak)
    trades = [t for t in res.trades if t.entry_row >= start]
    pnl = [t.net_pnl for t in trades]
    return {
        "total_return": (eq[-1] - base) / q if eq else nan,
        "sharpe": sharpe,
        "sortino": sortino,
        "periods_per_year": ppy,
        "max_drawdown": mdd,
        "hit_rate": sum(1 for v in pnl if v > 0) / len(pnl) if pnl else nan,
        "avg_trade": sum(pnl) / len(pnl) if pnl else nan,
        "turnover": res.traded_value / q,
        "exposure": sum(res.in_position[start:]) / len(eq) if eq else nan,
        "n_trades": len(trades),
        "open_at_end": res.open_position is not None,
        "final_equity": eq[-1] if eq else nan,
    }


@dataclass(frozen=True, slots=True)
class SweepCell:
    entry: float
    window: int
    metrics: dict[str, Any]


def sweep(
    times: Sequence[float],
    x: Sequence[float],
    y: Sequence[float],
    base: BacktestParams,
    entries: Sequence[float],
    windows: Sequence[int],
    end: int | None = None,
    spread_bps_x: Sequence[float | None] | None = None,
    spread_bps_y: Sequence[float | None] | None = None,
) -> list[list[SweepCell]]:
    """grid[i][j] = metrics of the backtest with windows[i] and entries[j] (rows [0, end)); the β and z
    columns (of `base.beta_source`) are computed once per window, not once per cell."""
    n = len(x) if end is None else end
    xs, ys, ts = list(x[:n]), list(y[:n]), list(times[:n])
    sx = None if spread_bps_x is None else list(spread_bps_x[:n])
    sy = None if spread_bps_y is None else list(spread_bps_y[:n])
    grid = []
    for w in windows:
        beta, z = beta_z_columns(xs, ys, w, base.beta_source, base.huber_every)
        line = []
        for e in entries:
            p = replace(base, window=w, entry=e)
            res = run_backtest(xs, ys, p, beta, z, spread_bps_x=sx, spread_bps_y=sy)
            line.append(SweepCell(e, w, summarize(res, p.notional, ts)))
        grid.append(line)
    return grid


def _score(m: dict[str, Any], metric: str) -> float:
    v = m[metric]
    return v if isinstance(v, float | int) and math.isfinite(v) else -math.inf


@dataclass(frozen=True, slots=True)
class WalkForward:
    split_row: int
    chosen: BacktestParams  # best in-sample cell by `metric`
    in_sample: dict[str, Any]  # its in-sample metrics (rows [0, split): optimistic by construction)
    out_of_sample: dict[str, Any]  # the same parameters traded on rows [split, end) only
    grid: list[list[SweepCell]]


def walk_forward(
    times: Sequence[float],
    x: Sequence[float],
    y: Sequence[float],
    base: BacktestParams,
    entries: Sequence[float],
    windows: Sequence[int],
    split: float = 0.5,
    metric: str = "sharpe",
    spread_bps_x: Sequence[float | None] | None = None,
    spread_bps_y: Sequence[float | None] | None = None,
) -> WalkForward:
    """Choose (entry, window) on the first `split` share of rows, then report it on the rest.

    Out of sample, the rolling window warms up on earlier rows (past data only, no look-ahead) but no
    decision is taken before the split row, and metrics cover rows from the split on.
    """
    if not 0.0 < split < 1.0:
        raise ValueError(f"split must be in (0, 1), got {split}")
    k = int(len(x) * split)
    grid = sweep(times, x, y, base, entries, windows, end=k, spread_bps_x=spread_bps_x, spread_bps_y=spread_bps_y)
    best = max((c for line in grid for c in line), key=lambda c: _score(c.metrics, metric))
    chosen = replace(base, window=best.window, entry=best.entry)
    res = run_backtest(list(x), list(y), chosen, first_decision_row=k, spread_bps_x=spread_bps_x,
                       spread_bps_y=spread_bps_y)  # fmt: skip
    return WalkForward(k, chosen, best.metrics, summarize(res, chosen.notional, list(times), start=k), grid)
