"""The optional quoted-spread columns of an uploaded backtest CSV (`spread_bps_x`, `spread_bps_y`, book data):
half of a leg's spread at a fill row is added to that fill's cost by the worker's backtest."""

from __future__ import annotations

import io
import math

import pandas as pd

COLUMNS = ("spread_bps_x", "spread_bps_y")


def parse_spreads(text: str) -> dict[str, list[float | None]]:
    """The spread columns present in the CSV (an empty cell = no book data at that row, sent as null);
    ValueError naming the row (1 = first data row) and column for anything that is not a number >= 0."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"not a CSV file: {str(exc)[:100]}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    out: dict[str, list[float | None]] = {}
    for name in COLUMNS:
        if name not in frame.columns:
            continue
        col: list[float | None] = []
        for i, v in enumerate(frame[name], start=1):
            if not v.strip():
                col.append(None)
                continue
            try:
                f = float(v)
            except ValueError:
                raise ValueError(f"row {i}, column {name}: {v[:40]!r} is not a number") from None
            if not (math.isfinite(f) and f >= 0):
                raise ValueError(f"row {i}, column {name}: {v[:40]!r} must be a finite number >= 0 (bps)")
            col.append(f)
        out[name] = col
    return out
