"""Reads shared by several pages, assembled for drawing: the pair view and the analytics stream tail."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import candles_live, live
from dashboard.frames import align_closes
from dashboard.pair_calc import pair_calc
from dashboard.sidebar import Controls
from qs_common import keys

ANALYTICS_HELD = 20_000


def analytics(pair: str) -> pd.DataFrame:
    """This session's tail of `stream:analytics`, polled now, rows of `pair` only."""
    t, _ = live.poll(keys.ANALYTICS_STREAM, initial=5_000, max_rows=ANALYTICS_HELD)
    frame = t.frame
    if frame.empty or "pair" not in frame:
        return pd.DataFrame()
    return frame[frame["pair"] == pair]


def latest_engine(rows: pd.DataFrame) -> dict[str, Any] | None:
    if rows.empty:
        return None
    last = rows.iloc[-1]
    return {k: v for k, v in last.items() if not (isinstance(v, float) and pd.isna(v))}


def pair_view(c: Controls) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, tuple[int, int]]:
    """(candles per leg, the pair calc frame, points still needed for (fair value, z-score)).

    The calc runs over the candles shown plus a window of warm-up."""
    frames = candles_live.live_candles([c.y, c.x], c.interval, c.candles + c.window)
    closes = align_closes(frames[c.y], frames[c.x])
    store = st.session_state.setdefault("_pair_calc", {})
    calc = pair_calc(store, (c.regression, c.window, c.pair, c.interval, c.kalman), closes)
    forming = None
    if not frames[c.y].empty and not frames[c.x].empty:
        forming = int(min(frames[c.y]["open_time"].iloc[-1], frames[c.x]["open_time"].iloc[-1]))
    out = calc.run(closes, forming)
    return frames, out.iloc[-c.candles :].reset_index(drop=True), (calc.needs_fit(), calc.needs())
