"""History from the worker API joined with the forming candle from Redis, per symbol and interval."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.frames import join_candles

SEEN_KEPT = 5  # forming candles remembered per symbol: they cover the moment before the API has stored them


def _seen(symbol: str, interval: str) -> dict[int, dict[str, Any]]:
    store = st.session_state.setdefault("_seen_forming", {})
    return store.setdefault((symbol, interval), {})


def live_candles(symbols: list[str], interval: str, limit: int) -> dict[str, pd.DataFrame]:
    """Candles per symbol: the last `limit` from history plus the forming one, no gap, no duplicate.

    History is cached per forming open time (a new candle forming means one closed: fetch again); while the
    API lacks a candle this session saw closing, the fetch is retried every 2 s and the remembered one fills in.
    """
    forming = data.forming_candles(symbols, interval)
    api_url = data.settings().api_url
    out: dict[str, pd.DataFrame] = {}
    for symbol in symbols:
        current = forming.get(symbol)
        seen = _seen(symbol, interval)
        bucket = int(current["open_time"]) if current else int(time.time() // 10)
        hist = data.fetch_candles(api_url, symbol, interval, limit, bucket=bucket)
        step = data.INTERVAL_MS.get(interval, 60_000)
        last = int(hist["open_time"].iloc[-1]) if not hist.empty else None
        if current is not None and last is not None and last < int(current["open_time"]) - step:
            retry = bucket * 1_000 + int(time.time() // 2) % 1_000
            hist = data.fetch_candles(api_url, symbol, interval, limit, bucket=retry)
        frame = join_candles(hist, current, seen.values())
        if current is not None:
            seen[int(current["open_time"])] = current
            for old in sorted(seen)[:-SEEN_KEPT]:
                del seen[old]
        out[symbol] = frame.iloc[-limit:].reset_index(drop=True) if len(frame) > limit else frame
    return out
