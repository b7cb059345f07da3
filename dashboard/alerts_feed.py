"""A small sidebar fragment on every page: reads `stream:alerts` from the last seen id and toasts new alerts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, live
from dashboard.safe import md
from dashboard.sidebar import Controls
from qs_common import keys

ALERTS_HELD = 2_000


def describe(row: pd.Series) -> str:
    value = row.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    # a pair rule's alert names its pair, a symbol rule's its symbol (the other column is empty: nan)
    where = next((v for v in (row.get("pair"), row.get("symbol")) if isinstance(v, str) and v), "")
    return f"{where}: {row.get('metric', '')} = {shown}"


def poll_alerts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all held alerts, the ones new since the last poll); the first poll toasts nothing."""
    first = live.tail(keys.ALERTS_STREAM, initial=ALERTS_HELD, max_rows=ALERTS_HELD).last_id is None
    t, new = live.poll(keys.ALERTS_STREAM, initial=ALERTS_HELD, max_rows=ALERTS_HELD)
    return t.frame, (pd.DataFrame() if first else new)


def watch(controls: Controls) -> None:
    every = None if controls.refresh_s is None else max(controls.refresh_s, 1.0)

    @st.fragment(run_every=every)
    def _watch() -> None:
        try:
            held, new = poll_alerts()
        except data.Unavailable:
            return  # the pages say so; the sidebar stays quiet
        for _, row in new.tail(5).iterrows():
            st.toast(md(f"Alert: {describe(row)}"), icon=":material/notifications:")
        if not held.empty:
            st.caption(md(f"{len(held)} alert(s) fired; latest: {describe(held.iloc[-1])}"))

    with st.sidebar:
        _watch()
