"""Backtest of the z-score pair strategy, by the rules of issue 9 §3 (a contract: follow it to the letter).

Inputs are rows (time, x, y) of close prices. At row t, β_t, α_t and z_t are the batch command's `ols_beta`,
`ols_alpha` and `zscore_ols` for window N (computed by the same `OLSZStepper`). A z that the batch command
would write as an empty cell (not yet warm, or nan) is "empty". With `beta_source` "kalman" or "huber" the
columns come from that source instead (`backtest_beta`); every rule below is unchanged.

* Decisions are taken at row t's close and filled at row t+1's prices; a decision at the last row is never
  filled. At most one position. No decision (entry or exit, max-hold included) at a row whose z_t is empty.
* Flat: z_t ≥ E opens SHORT spread, z_t ≤ −E opens LONG; with a stop S nothing opens where |z_t| ≥ S.
  q = notional / y_{t+1}; with β_t of the signal row, LONG: qty_y = +q, qty_x = −β_t·q; SHORT: the negatives.
* Exit a LONG when z_t ≥ −X, a SHORT when z_t ≤ X; with S also when |z_t| ≥ S; with K also at the first row
  (with a z) where t − f ≥ K, f the entry fill row. The exit fill trades the opposite quantities. An exit
  decided at t is filled at t+1, and the next entry can be decided at t+1 at the earliest.
* Costs per fill and leg: (fee_bps + slippage_bps)/10⁴ · |qty · price|. Net P&L = Σ legs qty·(exit − entry)
  − costs of the 4 fills. Where book data exists (optional columns `spread_bps_x`, `spread_bps_y`: the leg's
  quoted spread (ask − bid)/mid in bps recorded at the row), half of it is added at each fill of that leg on
  that row: (fee_bps + slippage_bps + spread_bps_leg,fill row / 2)/10⁴ · |qty · price|. An empty cell (None or
  nan) adds nothing; without the columns the costs are the contract's exactly.
  Equity at t = net P&L of trades closed (exit filled) at or before t + the open
  position's legs marked at row t's prices − its entry costs. Equity starts at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qs_analytics.backtest_beta import beta_z_columns, check_source

LONG = "LONG"
SHORT = "SHORT"


@dataclass(frozen=True, slots=True)
class BacktestParams:
    window: int
    entry: float
    exit: float
    notional: float
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    stop: float | None = None
    max_hold: int | None = None
    beta_source: str = "ols"  # "ols" (the contract), "kalman" or "huber": see backtest_beta
    huber_every: int = 1  # rows between Huber refits (1 = every row)

    def check(self) -> None:
        """Raise ValueError naming the parameter that makes no sense."""
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if not (math.isfinite(self.entry) and self.entry >= 0):
            raise ValueError(f"entry must be a finite number >= 0, got {self.entry}")
        if not math.isfinite(self.exit):
            raise ValueError(f"exit must be finite, got {self.exit}")
        if not (math.isfinite(self.notional) and self.notional > 0):
            raise ValueError(f"notional must be a finite number > 0, got {self.notional}")
        for name, v in (("fee_bps", self.fee_bps), ("slippage_bps", self.slippage_bps)):
            if not math.isfinite(v):  # negative is allowed: a maker rebate, price improvement
                raise ValueError(f"{name} must be a finite number, got {v}")
        if self.stop is not None and not (math.isfinite(self.stop) and self.stop > 0):
            raise ValueError(f"stop must be a finite number > 0, got {self.stop}")
        if self.max_hold is not None and self.max_hold < 0:
            raise ValueError(f"max_hold must be >= 0, got {self.max_hold}")
        check_source(self.beta_source, self.huber_every)


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed trade; rows are the rows filled at (0 = first data row), quantities signed at entry."""

    entry_row: int
    exit_row: int
    side: str
    qty_y: float
    qty_x: float
    entry_y: float
    entry_x: float
    exit_y: float
    exit_x: float
    gross_pnl: float
    costs: float
    net_pnl: float
    signal_row: int  # the row whose close decided the entry (entry_row − 1)
    exit_reason: str  # "exit", "stop", "max_hold"

    @property
    def holding_rows(self) -> int:
        return self.exit_row - self.entry_row


@dataclass(frozen=True, slots=True)
class OpenPosition:
    entry_row: int
    side: str
    qty_y: float
    qty_x: float
    entry_y: float
    entry_x: float
    entry_costs: float
    signal_row: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    trades: list[Trade]
    equity: list[float]  # one per input row
    in_position: list[bool]  # a position is held at the row's close (after the row's fills)
    open_position: OpenPosition | None  # still open after the last row (not in `trades`)
    traded_value: float  # Σ |qty · price| over every filled leg, for turnover


def _costs(rate: float, half_y: list[float] | None, half_x: list[float] | None, t: int, vy: float, vx: float) -> float:
    """Costs of one fill of both legs (traded values vy, vx); without book data the contract's formula as is."""
    if half_y is None and half_x is None:
        return rate * (vy + vx)
    hy = half_y[t] if half_y is not None else 0.0
    hx = half_x[t] if half_x is not None else 0.0
    return (rate + hy) * vy + (rate + hx) * vx


def half_spread_rates(spread_bps: Sequence[float | None] | None, n: int, name: str) -> list[float] | None:
    """Half the quoted spread of each row as a rate (bps/2/10⁴); 0 where a row has no book data, None
    without the column."""
    if spread_bps is None:
        return None
    if len(spread_bps) != n:
        raise ValueError(f"{name} must have one value per row ({n}), got {len(spread_bps)}")
    out = []
    for i, v in enumerate(spread_bps):
        if v is None or math.isnan(v):
            out.append(0.0)
        elif not (math.isfinite(v) and v >= 0):  # a crossed book or a typo is not a cost to trust
            raise ValueError(f"{name} at row {i}: a quoted spread must be a finite number >= 0 bps, got {v!r}")
        else:
            out.append(v / 2e4)
    return out


def _check_lengths(n: int, y: Sequence[float], beta: Sequence[float | None] | None,
                   z: Sequence[float | None] | None) -> None:
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    if (beta is None) != (z is None) or (beta is not None and z is not None and (len(beta) != n or len(z) != n)):
        raise ValueError(f"beta and z must be given together, {n} values each")


def run_backtest(
    x: Sequence[float],
    y: Sequence[float],
    p: BacktestParams,
    beta: Sequence[float | None] | None = None,
    z: Sequence[float | None] | None = None,
    first_decision_row: int = 0,
    spread_bps_x: Sequence[float | None] | None = None,
    spread_bps_y: Sequence[float | None] | None = None,
) -> BacktestResult:
    """Apply the rules to close prices x, y (> 0). β and z default to the columns of `p.beta_source`.

    `first_decision_row` lets a walk-forward test trade only its second part while the rolling window
    warms up on the first (no decision is taken before it).
    """
    p.check()
    n = len(x)
    _check_lengths(n, y, beta, z)
    if beta is None or z is None:
        beta, z = beta_z_columns(x, y, p.window, p.beta_source, p.huber_every)
    cost_rate = (p.fee_bps + p.slippage_bps) / 1e4
    half_x = half_spread_rates(spread_bps_x, n, "spread_bps_x")
    half_y = half_spread_rates(spread_bps_y, n, "spread_bps_y")
    E, X, S, K = p.entry, p.exit, p.stop, p.max_hold
    trades: list[Trade] = []
    equity: list[float] = []
    held: list[bool] = []
    closed_pnl = 0.0
    traded = 0.0
    pos: OpenPosition | None = None
    pending_entry: tuple[str, float, int] | None = None  # (side, β of the signal row, signal row)
    pending_exit: str | None = None  # the exit reason
    for t in range(n):
        xt, yt = x[t], y[t]
        if pending_entry is not None:
            side, b, sig = pending_entry
            q = p.notional / yt
            qy, qx = (q, -b * q) if side == LONG else (-q, b * q)
            c = _costs(cost_rate, half_y, half_x, t, abs(qy * yt), abs(qx * xt))
            traded += abs(qy * yt) + abs(qx * xt)
            pos = OpenPosition(t, side, qy, qx, yt, xt, c, sig)
            pending_entry = None
        elif pending_exit is not None and pos is not None:
            gross = pos.qty_y * (yt - pos.entry_y) + pos.qty_x * (xt - pos.entry_x)
            exit_costs = _costs(cost_rate, half_y, half_x, t, abs(pos.qty_y * yt), abs(pos.qty_x * xt))
            traded += abs(pos.qty_y * yt) + abs(pos.qty_x * xt)
            costs = pos.entry_costs + exit_costs
            trades.append(
                Trade(pos.entry_row, t, pos.side, pos.qty_y, pos.qty_x, pos.entry_y, pos.entry_x, yt, xt,
                      gross, costs, gross - costs, pos.signal_row, pending_exit)
            )  # fmt: skip
            closed_pnl += gross - costs
            pos = None
            pending_exit = None
        if pos is None:
            equity.append(closed_pnl)
        else:
            mark = pos.qty_y * (yt - pos.entry_y) + pos.qty_x * (xt - pos.entry_x)
            equity.append(closed_pnl + mark - pos.entry_costs)
        held.append(pos is not None)
        zt = z[t]
        if zt is None or not math.isfinite(zt) or t == n - 1 or t < first_decision_row:
            continue  # no decision on an empty z; one at the last row would never be filled
        if pos is None:
            pending_entry = _entry_signal(zt, beta[t], t, E, S)
        else:
            pending_exit = _exit_reason(pos, zt, t, X, S, K)
    return BacktestResult(trades, equity, held, pos, traded)


def _entry_signal(zt: float, bt: float | None, t: int, entry: float,
                  stop: float | None) -> tuple[str, float, int] | None:
    """Flat at row t: (side, β, t) to enter at the next row, or None (no signal, past the stop, no β)."""
    if stop is not None and abs(zt) >= stop:
        return None
    if bt is None or not math.isfinite(bt):
        return None
    if zt >= entry:
        return (SHORT, bt, t)
    if zt <= -entry:
        return (LONG, bt, t)
    return None


def _exit_reason(pos: OpenPosition, zt: float, t: int, exit_z: float, stop: float | None,
                 max_hold: int | None) -> str | None:
    """Holding at row t: why to close at the next row (stop, exit, max_hold), or None to keep holding."""
    if stop is not None and abs(zt) >= stop:
        return "stop"
    if (pos.side == LONG and zt >= -exit_z) or (pos.side == SHORT and zt <= exit_z):
        return "exit"
    if max_hold is not None and t - pos.entry_row >= max_hold:
        return "max_hold"
    return None
