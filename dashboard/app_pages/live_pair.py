"""Live pair: numbers every refresh (~0.5 s), charts every couple of seconds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import book_cost, data, pair_view
from dashboard.alerts_feed import poll_alerts
from dashboard.components import charts, notices, panels
from dashboard.sidebar import Controls
from dashboard.timing import timed
from qs_analytics.stationarity import half_life

c: Controls = st.session_state["_controls"]
st.title(f"{c.pair} · {c.interval}")


@st.fragment(run_every=c.refresh_s)
def numbers() -> None:
    with timed("numbers"):
        _numbers()


def _numbers() -> None:
    try:
        forming = data.forming_candles([c.y, c.x], c.interval)
        books = data.books([c.y, c.x])
        engine = pair_view.latest_engine(pair_view.analytics(c.pair))
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    cols = st.columns(5)
    for col, sym in zip(cols[:2], (c.y, c.x), strict=True):
        cand = forming.get(sym)
        if cand:
            change = float(cand["close"]) - float(cand["open"])
            col.metric(f"{sym} last", f"{float(cand['close']):,.2f}", f"{change:+,.2f} this {c.interval}")
        else:
            col.metric(f"{sym} last", "—")
    if engine:
        cols[2].metric("z-score (engine)", f"{engine.get('zscore', float('nan')):.3f}")
        cols[3].metric("β (OLS, engine)", f"{engine.get('ols_beta', float('nan')):.5f}")
        cols[4].metric("R²", f"{engine.get('ols_r2', float('nan')):.4f}")
    else:
        cols[2].caption("No pair analytics from the worker yet.")
    for sym in (c.y, c.x):
        panels.book(sym, books.get(sym), c.tz)
    st.session_state["_engine_latest"] = engine


def _alert_markers(calc: pd.DataFrame) -> pd.DataFrame | None:
    try:
        held, _ = poll_alerts()
    except data.Unavailable:
        return None
    if held.empty or "pair" not in held or calc.empty:
        return None
    mine = held[(held["pair"] == c.pair) & (held["ts"] >= calc["open_time"].iloc[0])].sort_values("ts")
    if mine.empty:
        return None
    z = calc[["open_time", "zscore"]].dropna().rename(columns={"open_time": "ts"})
    out = pd.merge_asof(mine[["ts", "metric", "value"]], z, on="ts") if not z.empty else mine.assign(zscore=0.0)
    out["value"] = out["zscore"].fillna(0.0)
    return out


@st.fragment(run_every=c.chart_refresh_s)
def chart_area() -> None:
    with timed("charts"):
        _chart_area()


def _chart_area() -> None:
    try:
        frames, calc, needs = pair_view.pair_view(c)
        rows = pair_view.analytics(c.pair)
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    left, right = st.columns(2)
    for col, sym in ((left, c.y), (right, c.x)):
        with col:
            if frames[sym].empty:
                st.info(f"No {c.interval} candles for {sym} yet.")
            else:
                st.plotly_chart(charts.candles(frames[sym].iloc[-c.candles :], sym, c.tz), config=charts.CONFIG)
    last = calc.iloc[-1].to_dict() if not calc.empty else None
    spreads = calc["spread"].dropna().to_numpy()[-c.window :] if not calc.empty else None
    hl = half_life(spreads) if spreads is not None else None
    if last is not None and hl is not None:
        last["half_life"] = hl.half_life
    if calc.empty or calc["fair"].notna().sum() == 0:
        notices.needs_more(f"Fair value ({c.regression}, window {c.window})", max(needs[0], 1), len(calc))
    else:
        st.plotly_chart(charts.legs(calc, c.y, c.x, c.tz), config=charts.CONFIG)
    if calc.empty or calc["zscore"].notna().sum() == 0:
        notices.needs_more(f"Spread z-score (window {c.window})", max(needs[1], 1), len(calc))
    else:
        st.plotly_chart(charts.spread_z(calc, c.tz, c.z_exit, c.z_entry, _alert_markers(calc)), config=charts.CONFIG)
    h, r = st.columns(2)
    with h:
        betas = [col for col in rows.columns if col.endswith("_beta")] if not rows.empty else []
        if betas:
            shown = rows.iloc[-3_000:]
            st.plotly_chart(charts.lines(shown, betas, c.tz, "Hedge ratio (worker, tick level)"), config=charts.CONFIG)
            missing = [m for m in ("ols_beta", "kalman_beta", "huber_beta", "theilsen_beta") if m not in betas]
            if missing:
                st.caption(f"Not published by the worker yet: {', '.join(missing)}.")
        else:
            st.info("Hedge ratio: no analytics entries for this pair from the worker yet.")
    with r:
        if calc.empty or calc["corr"].notna().sum() == 0:
            notices.needs_more("Rolling correlation", max(c.window + 1 - len(calc), 1), len(calc))
        else:
            title = f"Rolling correlation of returns (window {c.window})"
            st.plotly_chart(charts.lines(calc, ["corr"], c.tz, title), config=charts.CONFIG)
    panels.stats(st.session_state.get("_engine_latest"), last, c.regression, st.session_state.get("_adf_last"), c.tz)


numbers()
book_cost.entry_cost(c)  # issue 11: walking both legs' books at a chosen notional
chart_area()
