"""`python -m worker.analytics backtest ...` and `python -m worker.analytics garch ...`: flags, files, exit codes.

The only module of the research commands that reads or writes files; the math is in `backtest`,
`backtest_metrics` and `garch`. Bad input exits 2 with a message naming the row and column, and leaves no
half-written output behind.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qs_analytics.backtest import BacktestParams, run_backtest
from qs_analytics.backtest_beta import BETA_SOURCES
from qs_analytics.backtest_metrics import periods_per_year, summarize
from qs_analytics.garch import fit_garch
from worker.analytics.batch import InputError, _cell, _num

TRADE_COLUMNS = (
    "entry_row", "exit_row", "side", "qty_y", "qty_x", "entry_y", "entry_x", "exit_y", "exit_x",
    "gross_pnl", "costs", "net_pnl", "entry_time", "exit_time", "holding_rows", "exit_reason",
)  # fmt: skip
GARCH_COLUMNS = (
    "omega", "alpha", "beta", "sigma_next", "mu", "persistence", "sigma_now", "sigma_5", "sigma_60",
    "cum_sigma_5", "cum_sigma_60", "sigma_next_ann", "sigma_5_ann", "sigma_60_ann", "periods_per_year",
    "loglik", "nobs", "converged",
)  # fmt: skip


def read_columns(path: str, cols: Sequence[str], positive: Sequence[str]) -> tuple[list[str], list[list[float]]]:
    """The `time` texts as read and the numeric columns `cols`; InputError names the bad row and column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if header is None:
            raise InputError("row 1 (header): the file is empty")
        need = ["time", *cols]
        missing = [c for c in need if c not in header]
        if missing:
            raise InputError(f"row 1 (header): missing column(s) {', '.join(missing)}; need {','.join(need)}")
        times: list[str] = []
        out: list[list[float]] = [[] for _ in cols]
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"row {i}: more cells than header columns")
            _cell(row, "time", i)
            times.append((row["time"] or "").strip())
            for k, c in enumerate(cols):
                v = _cell(row, c, i)
                if c in positive and v <= 0:
                    raise InputError(f"row {i}, column {c!r}: a price must be > 0, got {row[c]!r}")
                out[k].append(v)
    return times, out


SPREAD_COLUMNS = ("spread_bps_x", "spread_bps_y")


def read_spreads(path: str) -> dict[str, list[float | None] | None]:
    """The optional quoted-spread columns (bps, >= 0; an empty cell is "no book data"); None for an absent one."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        present = [c for c in SPREAD_COLUMNS if c in (reader.fieldnames or ())]
        out: dict[str, list[float | None] | None] = {c: None for c in SPREAD_COLUMNS}
        if not present:
            return out
        cols: dict[str, list[float | None]] = {c: [] for c in present}
        for i, row in enumerate(reader, start=2):
            for c in present:
                if not (row.get(c) or "").strip():
                    cols[c].append(None)
                    continue
                v = _cell(row, c, i)
                if v < 0:
                    raise InputError(f"row {i}, column {c!r}: a quoted spread must be >= 0 bps, got {row[c]!r}")
                cols[c].append(v)
    return {**out, **cols}


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _cleanup(paths: Sequence[str | None]) -> None:
    for p in paths:
        if p and p != "-":
            Path(p).unlink(missing_ok=True)  # no half-written result that looks complete


def backtest_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m worker.analytics backtest",
                                description="Backtest the z-score pair strategy (issue 9 §3 rules).")  # fmt: skip
    p.add_argument("--input", required=True,
                   help="CSV with header time,x,y (close prices > 0); optional spread_bps_x, spread_bps_y (quoted "
                        "spread in bps at the row: half of it is added to the cost of a fill there)")  # fmt: skip
    p.add_argument("--window", type=int, required=True, help="rolling window N in rows (>= 2)")
    p.add_argument("--entry", type=float, required=True, help="open when |z| >= E")
    p.add_argument("--exit", type=float, required=True, help="close a LONG when z >= -X, a SHORT when z <= X")
    p.add_argument("--stop", type=float, default=None, help="close when |z| >= S; never open there")
    p.add_argument("--max-hold", type=int, default=None, help="close at the first row t with t - f >= K")
    p.add_argument("--fee-bps", type=float, required=True, help="fee per fill and leg, bps of traded value")
    p.add_argument("--slippage-bps", type=float, required=True, help="slippage per fill and leg, bps")
    p.add_argument("--notional", type=float, required=True, help="q = notional / y at the entry fill")
    p.add_argument("--trades", required=True, help="TRADES.csv to write")
    p.add_argument("--equity", required=True, help="EQUITY.csv to write (time,equity per input row)")
    p.add_argument("--summary", default=None, help="optional JSON file for the summary metrics")
    p.add_argument("--beta-source", choices=BETA_SOURCES, default="ols",
                   help="β_t, α_t, z_t from rolling OLS (default: the contract), the Kalman filter or a rolling "
                        "Huber fit over the window")  # fmt: skip
    p.add_argument("--huber-every", type=int, default=1, help="rows between Huber refits (default 1: every row)")
    a = p.parse_args(argv)
    params = BacktestParams(a.window, a.entry, a.exit, a.notional, a.fee_bps, a.slippage_bps, a.stop, a.max_hold,
                            a.beta_source, a.huber_every)  # fmt: skip
    try:
        params.check()
    except ValueError as e:
        p.error(str(e))
    outputs = (a.trades, a.equity, a.summary)
    try:
        times, (x, y) = read_columns(a.input, ("x", "y"), positive=("x", "y"))
        spreads = read_spreads(a.input)
        res = run_backtest(x, y, params, spread_bps_x=spreads["spread_bps_x"], spread_bps_y=spreads["spread_bps_y"])
        with open(a.trades, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(TRADE_COLUMNS)
            for t in res.trades:
                w.writerow([t.entry_row, t.exit_row, t.side, *(_num(v) for v in (
                    t.qty_y, t.qty_x, t.entry_y, t.entry_x, t.exit_y, t.exit_x, t.gross_pnl, t.costs, t.net_pnl)),
                    times[t.entry_row], times[t.exit_row], t.holding_rows, t.exit_reason])  # fmt: skip
        with open(a.equity, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(("time", "equity"))
            w.writerows((tm, repr(e)) for tm, e in zip(times, res.equity, strict=True))
        if a.summary:
            summary = summarize(res, params.notional, [float(t) for t in times])
            with open(a.summary, "w", encoding="utf-8") as f:
                json.dump(_json_safe(summary), f, indent=1)
    except InputError as e:
        _cleanup(outputs)
        print(f"{a.input}: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:
        _cleanup(outputs)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def garch_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m worker.analytics garch",
                                description="GARCH(1,1) of 100 x log returns (arch package).")  # fmt: skip
    p.add_argument("--input", required=True, help="CSV with header time,close (closes > 0)")
    p.add_argument("--output", required=True, help="CSV to write: one row, header first")
    p.add_argument("--periods-per-year", type=float, default=None,
                   help="for the annualised σ; default: inferred from the median time step")  # fmt: skip
    a = p.parse_args(argv)
    try:
        times, (close,) = read_columns(a.input, ("close",), positive=("close",))
        ppy = a.periods_per_year or periods_per_year([float(t) for t in times])
        try:
            fit = fit_garch(close, ppy)
        except ValueError as e:
            raise InputError(str(e)) from None
        d = fit.as_dict()
        with open(a.output, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(GARCH_COLUMNS)
            w.writerow([repr(d[c]) if isinstance(d[c], float) else str(d[c]) for c in GARCH_COLUMNS])
    except InputError as e:
        _cleanup((a.output,))
        print(f"{a.input}: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:
        _cleanup((a.output,))
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


COMMANDS = {"backtest": backtest_main, "garch": garch_main}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch `backtest` / `garch`; anything else is the original batch command, unchanged."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    from worker.analytics.batch import main as batch_main

    return batch_main(args)
