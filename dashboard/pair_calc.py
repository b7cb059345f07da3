"""Candle frames in and out of `qs_analytics.hedge.HedgeSeries`, kept between Streamlit reruns.

`PairCalc` keeps its series between reruns: closed candles are fed once, in order; the forming candle is
evaluated on a copy, so the next rerun can feed it for real once it closes. A change of settings or of the
history's start makes a fresh `PairCalc`. The math (and what β, spread and z mean) is the worker's, in
`qs_analytics`; this module only moves pandas rows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qs_analytics.hedge import HedgeRow, HedgeSeries

COLUMNS = HedgeRow._fields  # beta, alpha, fair, spread, zscore, corr


class PairCalc:
    """Rolling β, α, fair value, spread, z-score and return correlation of y on x over candle closes."""

    def __init__(self, kind: str, window: int, kalman: Mapping[str, float] | None = None) -> None:
        self.kind, self.window = kind, window
        self._series = HedgeSeries(kind, window, kalman)
        self._rows: list[tuple[float, ...]] = []
        self.last_closed: int | None = None
        self.first: int | None = None

    def needs(self) -> int:
        """Points still missing before the first z-score."""
        return self._series.needs()

    def needs_fit(self) -> int:
        """Points still missing before the first fair value."""
        return self._series.needs_fit()

    def run(self, closes: pd.DataFrame, forming_open_time: int | None) -> pd.DataFrame:
        """Feed closed rows not yet seen; evaluate the forming row (if any) on a copy. Columns: see COLUMNS."""
        ts = closes["open_time"].to_numpy(dtype=np.int64)
        ys = closes["y"].to_numpy(dtype=float)
        xs = closes["x"].to_numpy(dtype=float)
        start = 0 if self.last_closed is None else int(np.searchsorted(ts, self.last_closed, side="right"))
        for i in range(start, len(ts)):
            if forming_open_time is not None and ts[i] >= forming_open_time:
                break
            t, y, x = int(ts[i]), float(ys[i]), float(xs[i])
            self._rows.append((t, y, x, *self._series.step(t, y, x)))
            self.last_closed = t
            if self.first is None:
                self.first = t
        if len(self._rows) > 20_000:
            del self._rows[:-10_000]
        rows = self._rows
        if forming_open_time is not None and len(ts) and ts[-1] == forming_open_time:
            probe = copy.deepcopy(self._series)
            t, y, x = int(ts[-1]), float(ys[-1]), float(xs[-1])
            rows = [*self._rows, (t, y, x, *probe.step(t, y, x))]
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
