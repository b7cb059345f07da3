"""ADF test on demand: the spread of the chosen pair, regression and window, tested now."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import data, views
from dashboard.components import notices
from dashboard.frames import fmt_time
from dashboard.sidebar import Controls
from qs_analytics.stationarity import MIN_ADF_POINTS, adf_test, half_life

c: Controls = st.session_state["_controls"]
st.title(f"ADF test · {c.pair}")
st.markdown(
    "The augmented Dickey–Fuller test asks whether the spread **y − (βx + α)** has a unit root. "
    "A statistic below a critical value rejects the unit root: the spread tends back to its mean, which is "
    "what a pair trade needs. Not rejecting means no evidence of mean reversion in this sample."
)
scope = st.radio(
    "Points tested",
    ("the rolling window", "every candle shown"),
    horizontal=True,
    key="adf_scope",
    help=f"rolling window = the last {c.window} spreads; candles shown = up to {c.candles}",
)
if st.button("Run ADF now", type="primary", key="adf_run"):
    try:
        calc = views.pair_view(c)[1]
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        st.stop()
    spread = calc["spread"].dropna()
    if scope == "the rolling window":
        spread = spread.iloc[-c.window :]
    res = adf_test(spread.to_numpy())
    hl = half_life(spread.to_numpy())
    as_of = fmt_time(int(calc["open_time"].iloc[-1]), c.tz) if not calc.empty else "—"
    st.session_state["_adf_result"] = (res, hl, len(spread), as_of, c.pair, c.regression, c.interval)
    if res.ran:
        st.session_state["_adf_last"] = f"{res.verdict} (p = {res.p_value:.3f}, {c.pair}, {as_of})"

stored = st.session_state.get("_adf_result")
if stored is None:
    st.caption(f"Press the button to test. The test needs at least {MIN_ADF_POINTS} spread points.")
else:
    res, hl, n, as_of, pair, regression, interval = stored
    st.subheader(res.verdict)
    st.caption(f"{pair}, {regression} fair value, {interval} candles, {n} points, as of {as_of}")
    if not res.ran:
        if res.needs:
            notices.needs_more("ADF test", res.needs, n)
    else:
        cols = st.columns(4)
        cols[0].metric("ADF statistic", f"{res.statistic:.3f}")
        cols[1].metric("p-value", f"{res.p_value:.4f}")
        cols[2].metric("Lags used", res.lags_used)
        hl_text = "—" if hl is None or not math.isfinite(hl.half_life) else f"{hl.half_life:.1f} candles"
        cols[3].metric("Half-life", hl_text)
        st.table(
            {
                level: [f"{v:.3f}", "rejects" if res.statistic < v else "does not reject"]
                for level, v in res.critical_values.items()
            }
        )
        st.markdown(
            f"p = {res.p_value:.3f}: if the spread had a unit root, a statistic this low would turn up "
            f"{res.p_value:.1%} of the time. Below 5 % is the usual bar for calling the spread mean-reverting."
        )
