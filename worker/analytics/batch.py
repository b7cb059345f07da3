"""Offline recomputation of a pair CSV with the live classes (so live and offline cannot drift).

Input: a CSV with at least the columns `time,x,y` (any others are carried through). Output: every input
column as read, then per row (N = --window):
* ols_beta, ols_alpha, ols_r2, ols_resid_std: OLS of y on x over the last N rows ending at this row;
  empty until N rows exist (and where x is constant over the window);
* kalman_beta, kalman_alpha, kalman_e, kalman_s: the filtered state after the update with this row;
* spread_ols = y − ols_beta·x − ols_alpha, each row with its own fit;
* zscore_ols: (spread − mean)/std over the last N spread_ols values, std ddof=1; empty until N exist.
Numbers are written with repr, i.e. the shortest text that reads back as the same float.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from qs_analytics import defaults
from qs_analytics.kalman import KalmanHedge
from qs_analytics.olsz import OLSZStepper

REQUIRED = ("time", "x", "y")
OUTPUT = (
    "ols_beta", "ols_alpha", "ols_r2", "ols_resid_std",
    "kalman_beta", "kalman_alpha", "kalman_e", "kalman_s",
    "spread_ols", "zscore_ols",
)  # fmt: skip


class InputError(ValueError):
    """Bad input file: the message names the row and column."""


def _num(v: float | None) -> str:
    return repr(v) if v is not None and math.isfinite(v) else ""


def _cell(row: dict[str, str], col: str, row_no: int) -> float:
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"row {row_no}, column {col!r}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"row {row_no}, column {col!r}: {text!r} is not a finite number")
    return v


def run(src: TextIO, dst: TextIO, window: int, delta: float, obs_noise: float, init_cov: float) -> int:
    """Stream `src` to `dst`; returns the number of data rows. Raises InputError on bad input."""
    reader = csv.DictReader(src)
    header = reader.fieldnames
    if header is None:
        raise InputError("row 1 (header): the file is empty")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"row 1 (header): missing column(s) {', '.join(missing)}; need {','.join(REQUIRED)}")
    writer = csv.writer(dst, lineterminator="\n")
    writer.writerow([*header, *OUTPUT])
    olsz = OLSZStepper(window)
    kalman = KalmanHedge(delta, obs_noise, init_cov)
    rows = 0
    for i, row in enumerate(reader, start=2):  # row numbers as a spreadsheet shows them: header is row 1
        if None in row:
            raise InputError(f"row {i}: more cells than header columns")
        _cell(row, "time", i)
        x = _cell(row, "x", i)
        y = _cell(row, "y", i)
        o = olsz.update(x, y)
        k = kalman.update(x, y)
        out = [o.beta, o.alpha, o.r2, o.resid_std, k.beta, k.alpha, k.e, k.s, o.spread, o.z]
        writer.writerow([row[c] if row[c] is not None else "" for c in header] + [_num(v) for v in out])
        rows += 1
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m worker.analytics",
        description=__doc__.splitlines()[0],
        epilog="Also: `python -m worker.analytics backtest --help` and `python -m worker.analytics garch --help`.",
    )
    p.add_argument("--input", required=True, help="CSV with header time,x,y")
    p.add_argument("--output", required=True, help="CSV to write ('-' for stdout)")
    p.add_argument("--window", type=int, required=True, help="rolling window N in rows (>= 2)")
    # the live worker's defaults (KALMAN_DELTA, ...), so a file recomputed with no flags matches the live engine
    p.add_argument("--delta", type=float, default=defaults.KALMAN_DELTA,
                   help="Kalman δ: process noise δ/(1−δ)·I (default %(default)s)")
    p.add_argument("--obs-noise", type=float, default=defaults.KALMAN_OBS_NOISE,
                   help="Kalman observation noise variance R (default %(default)s)")
    p.add_argument("--init-cov", type=float, default=defaults.KALMAN_INIT_COV,
                   help="Kalman initial covariance C (C·I) (default %(default)s)")
    a = p.parse_args(argv)
    if a.window < 2:
        p.error("--window must be >= 2")
    if not 0.0 < a.delta < 1.0 or not a.obs_noise > 0.0 or not a.init_cov > 0.0:
        p.error("need 0 < --delta < 1, --obs-noise > 0 and --init-cov > 0")
    try:
        with open(a.input, newline="", encoding="utf-8") as src:
            if a.output == "-":
                run(src, sys.stdout, a.window, a.delta, a.obs_noise, a.init_cov)
            else:
                with open(a.output, "w", newline="", encoding="utf-8") as dst:
                    run(src, dst, a.window, a.delta, a.obs_noise, a.init_cov)
    except InputError as e:
        if a.output != "-":
            Path(a.output).unlink(missing_ok=True)  # no half-written result that looks complete
        print(f"{a.input}: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
