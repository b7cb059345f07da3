"""Live pair: the worker engine's numbers every refresh (~0.5 s), charts every couple of seconds.

One z: the headline z, the z chart and the alert markers are the engine's (tick level, `stream:analytics`),
the series alerts fire on. The candle-level view (fair value, correlation, the stats row "candles") is computed
on candle closes with the same pair settings as the engine (window, β source, Kalman δ and R), and says so.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import book_cost, data, engine_view, pair_view
from dashboard.alerts_feed import poll_alerts
from dashboard.components import charts, notices, panels
from dashboard.frames import fmt_time
from dashboard.safe import md
from dashboard.sidebar import Controls
from dashboard.timing import timed
from qs_analytics.stationarity import half_life

c: Controls = st.session_state["_controls"]
st.title(f"{c.pair} · {c.interval}")
if not c.computed:
    st.info(md(f"The worker computes no pair yet, so there are no engine numbers for {c.pair}. "
               "Add a pair in the sidebar under Symbols and pairs."))  # fmt: skip


def _num(engine: dict[str, Any], name: str, digits: int) -> str:
    value = engine.get(name)
    return "—" if value is None else f"{float(value):.{digits}f}"


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
    label = engine_view.engine_label(engine, c.settings)
    if engine:
        beta = "hedge_beta" if "hedge_beta" in engine else "ols_beta"
        cols[2].metric("z-score (engine)", _num(engine, "zscore", 3))
        cols[3].metric("β (engine)", _num(engine, beta, 5))
        cols[4].metric("R² (OLS, engine)", _num(engine, "ols_r2", 4))
        st.caption(md(f"Engine numbers: {label} · as of {fmt_time(engine.get('ts'), c.tz)}"))
        if engine_view.switching(engine, c.settings):
            st.caption(md("The engine is switching to " + engine_view.describe(
                c.window, c.settings.beta_source, c.settings.price_source) + " (warming from recent history)."))
    else:
        cols[2].caption("No pair analytics from the worker yet.")
    for sym in (c.y, c.x):
        panels.book(sym, books.get(sym), c.tz)
    st.session_state["_engine_latest"] = engine


def _engine_z(rows: Any) -> None:
    z = engine_view.z_series(rows)
    if z.empty:
        st.info("Spread z-score: no analytics entries with a z for this pair from the worker yet.")
        return
    try:
        held, _ = poll_alerts()
        markers = engine_view.alert_markers(held, c.pair, z)
    except data.Unavailable:
        markers = None
    title = f"Spread and z-score ({engine_view.engine_label(pair_view.latest_engine(rows), c.settings)})"
    st.plotly_chart(charts.spread_z(z, c.tz, c.z_exit, c.z_entry, markers, title=title), config=charts.CONFIG)


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
    _engine_z(rows)
    candle_label = engine_view.candle_label(c.interval, c.settings)
    st.markdown(md(f"{candle_label[0].upper()}{candle_label[1:]}: the pair's engine settings, applied to candles"))
    last = calc.iloc[-1].to_dict() if not calc.empty else None
    spreads = calc["spread"].dropna().to_numpy()[-c.window :] if not calc.empty else None
    hl = half_life(spreads) if spreads is not None else None
    if last is not None and hl is not None:
        last["half_life"] = hl.half_life
    if calc.empty or calc["fair"].notna().sum() == 0:
        notices.needs_more(f"Fair value ({candle_label})", max(needs[0], 1), len(calc))
    else:
        st.plotly_chart(charts.legs(calc, c.y, c.x, c.tz), config=charts.CONFIG)
    h, r = st.columns(2)
    with h:
        _hedge_ratio(rows)
    with r:
        if calc.empty or calc["corr"].notna().sum() == 0:
            notices.needs_more("Rolling correlation", max(c.window + 1 - len(calc), 1), len(calc))
        else:
            title = f"Rolling correlation of returns (candle level, window {c.window})"
            st.plotly_chart(charts.lines(calc, ["corr"], c.tz, title), config=charts.CONFIG)
    engine = st.session_state.get("_engine_latest")
    labels = (engine_view.engine_label(engine, c.settings), candle_label)
    panels.stats(engine, last, labels, st.session_state.get("_adf_last"), c.tz)


def _hedge_ratio(rows: Any) -> None:
    betas = [col for col in rows.columns if col.endswith("_beta")] if not rows.empty else []
    if not betas:
        st.info("Hedge ratio: no analytics entries for this pair from the worker yet.")
        return
    shown = rows.iloc[-3_000:]
    st.plotly_chart(charts.lines(shown, betas, c.tz, "Hedge ratio (engine, tick level)"), config=charts.CONFIG)
    missing = [m for m in ("ols_beta", "kalman_beta", "huber_beta", "theilsen_beta") if m not in betas]
    if missing:
        st.caption(f"Not published by the worker yet: {', '.join(missing)}.")


numbers()
book_cost.entry_cost(c)  # issue 11: walking both legs' books at a chosen notional
chart_area()
