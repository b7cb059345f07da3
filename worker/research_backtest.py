"""`POST /research/backtest`: the request (JSON, checked by pydantic), its price source, and the answer.

Source: stored candles of two symbols (closes aligned on open time) or uploaded rows `[time, x, y]`, with
optional per-row quoted spreads `spread_bps_x`, `spread_bps_y` (half of each is added to a fill's cost).
The strategy is `qs_analytics.backtest` (β from rolling OLS by default, the issue 9 §3 contract, or from the
Kalman filter or a rolling Huber fit with `params.beta_source`); the sweep and
walk-forward are `qs_analytics.backtest_metrics`'s.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qs_analytics.backtest import BacktestParams, run_backtest
from qs_analytics.backtest_metrics import summarize, walk_forward
from worker.research_store import ResearchStore

MAX_ROWS = 200_000
MAX_CELLS = 100
_SYM = r"^[A-Za-z0-9]{2,30}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Params(_Model):
    window: int = Field(60, ge=2, le=100_000)
    entry: float = Field(2.0, ge=0)
    exit: float = 0.5
    stop: float | None = Field(None, gt=0)
    max_hold: int | None = Field(None, ge=0)
    fee_bps: float = 1.0
    slippage_bps: float = 1.0
    notional: float = Field(10_000.0, gt=0)
    # the contract's β is rolling OLS; Kalman and Huber give β_t, α_t, z_t from those fits (qs_analytics.backtest_beta)
    beta_source: Literal["ols", "kalman", "huber"] = "ols"
    huber_every: int = Field(1, ge=1, le=100_000)  # rows between Huber refits


class CandleSource(_Model):
    kind: Literal["candles"]
    y: Annotated[str, Field(pattern=_SYM)]
    x: Annotated[str, Field(pattern=_SYM)]
    interval: Literal["1m", "5m", "15m", "1h", "4h", "1d"] = "1m"
    start: int | None = Field(None, ge=0)
    end: int | None = Field(None, ge=0)
    limit: int = Field(10_000, ge=10, le=MAX_ROWS)


class RowSource(_Model):
    kind: Literal["rows"]
    rows: list[tuple[float, float, float]] = Field(max_length=MAX_ROWS)  # time, x, y
    # quoted spread of each leg in bps per row (book data; null = none at that row): half is added to a fill's cost
    spread_bps_x: list[Annotated[float, Field(ge=0)] | None] | None = None
    spread_bps_y: list[Annotated[float, Field(ge=0)] | None] | None = None

    @model_validator(mode="after")
    def _prices(self) -> RowSource:
        for i, (_, x, y) in enumerate(self.rows, start=1):
            if not (x > 0 and y > 0):
                raise ValueError(f"row {i}: prices x and y must be > 0, got {x!r}, {y!r}")
        for name in ("spread_bps_x", "spread_bps_y"):
            col = getattr(self, name)
            if col is not None and len(col) != len(self.rows):
                raise ValueError(f"{name}: {len(col)} values for {len(self.rows)} rows")
        return self


class Sweep(_Model):
    entries: list[Annotated[float, Field(ge=0)]] = Field(min_length=1, max_length=20)
    windows: list[Annotated[int, Field(ge=2, le=100_000)]] = Field(min_length=1, max_length=20)
    split: float = Field(0.5, gt=0, lt=1)
    metric: Literal["sharpe", "sortino", "total_return"] = "sharpe"

    @model_validator(mode="after")
    def _size(self) -> Sweep:
        if len(self.entries) * len(self.windows) > MAX_CELLS:
            raise ValueError(f"at most {MAX_CELLS} sweep cells, got {len(self.entries) * len(self.windows)}")
        return self


class BacktestRequest(_Model):
    params: Params = Params()
    source: CandleSource | RowSource = Field(discriminator="kind")
    sweep: Sweep | None = None


def parse(body: Any) -> BacktestRequest:
    """The request, or ValueError naming the field (`params.window: ...`)."""
    try:
        return BacktestRequest.model_validate(body)
    except ValidationError as err:
        msgs = []
        for e in err.errors()[:5]:
            where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-after", "tagged")))
            msgs.append(f"{where or 'body'}: {e['msg'].removeprefix('Value error, ')}")
        raise ValueError("; ".join(msgs)) from None


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def load_rows(req: BacktestRequest, rs: ResearchStore) -> tuple[list[float], list[float], list[float]]:
    """(times, x, y) of the source; candles are aligned on open time (times in ms)."""
    src = req.source
    if isinstance(src, RowSource):
        return [r[0] for r in src.rows], [r[1] for r in src.rows], [r[2] for r in src.rows]
    ty, cy = rs.closes_of(src.y.upper(), src.interval, src.start, src.end, src.limit)
    tx, cx = rs.closes_of(src.x.upper(), src.interval, src.start, src.end, src.limit)
    xs = dict(zip(tx, cx, strict=True))
    rows = [(t, xs[t], c) for t, c in zip(ty, cy, strict=True) if t in xs]
    return [float(r[0]) for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def run(req: BacktestRequest, rs: ResearchStore) -> dict[str, Any]:
    times, x, y = load_rows(req, rs)
    p = req.params
    if len(x) < p.window + 2:
        raise ValueError(f"source: {len(x)} aligned rows; window {p.window} needs at least {p.window + 2}")
    bp = BacktestParams(p.window, p.entry, p.exit, p.notional, p.fee_bps, p.slippage_bps, p.stop, p.max_hold,
                        p.beta_source, p.huber_every)  # fmt: skip
    # half the quoted spread at each fill, where the uploaded rows carry it (stored candles have no book data)
    sx = req.source.spread_bps_x if isinstance(req.source, RowSource) else None
    sy = req.source.spread_bps_y if isinstance(req.source, RowSource) else None
    res = run_backtest(x, y, bp, spread_bps_x=sx, spread_bps_y=sy)
    summary = summarize(res, p.notional, times)
    shown = [int(t) if float(t).is_integer() else t for t in times]  # ms open times stay integers
    trades = [{"entry_row": t.entry_row, "exit_row": t.exit_row, "entry_time": shown[t.entry_row],
               "exit_time": shown[t.exit_row], "side": t.side, "qty_y": t.qty_y, "qty_x": t.qty_x,
               "entry_y": t.entry_y, "entry_x": t.entry_x, "exit_y": t.exit_y, "exit_x": t.exit_x,
               "gross_pnl": t.gross_pnl, "costs": t.costs, "net_pnl": t.net_pnl, "holding_rows": t.holding_rows,
               "exit_reason": t.exit_reason} for t in res.trades]  # fmt: skip
    op = res.open_position
    out: dict[str, Any] = {
        "rows": len(x), "first_time": shown[0], "last_time": shown[-1], "params": p.model_dump(),
        "half_spread_costs": [leg for leg, col in (("x", sx), ("y", sy)) if col is not None],
        "summary": _clean(summary), "trades": trades,
        "equity": {"time": shown, "equity": res.equity},
        "open_position": None if op is None else {"entry_row": op.entry_row, "side": op.side, "qty_y": op.qty_y,
                                                   "qty_x": op.qty_x, "entry_y": op.entry_y, "entry_x": op.entry_x},
    }  # fmt: skip
    if req.sweep is not None:
        sw = req.sweep
        wf = walk_forward(times, x, y, bp, sw.entries, sw.windows, split=sw.split, metric=sw.metric,
                          spread_bps_x=sx, spread_bps_y=sy)  # fmt: skip
        out["sweep"] = {
            "entries": sw.entries, "windows": sw.windows, "metric": sw.metric, "split_row": wf.split_row,
            "in_sample_rows": wf.split_row,
            # grid[i][j]: windows[i] × entries[j], every metric, on the in-sample rows only
            "grid": [[_clean(c.metrics) for c in line] for line in wf.grid],
            "best_in_sample": {"window": wf.chosen.window, "entry": wf.chosen.entry},
        }
        out["walk_forward"] = {"split_row": wf.split_row, "split_time": shown[wf.split_row],
                               "chosen": {"window": wf.chosen.window, "entry": wf.chosen.entry},
                               "in_sample": _clean(wf.in_sample),
                               "out_of_sample": _clean(wf.out_of_sample)}  # fmt: skip
    return out
