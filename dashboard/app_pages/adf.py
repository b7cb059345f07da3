"""ADF test on demand: the spread of the chosen pair, regression and window, tested now."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import data, pair_view
from dashboard.components import notices
from dashboard.components.research_views import eg_table
from dashboard.frames import fmt_time
from dashboard.sidebar import Controls
from qs_analytics.coint import MIN_POINTS as MIN_EG_POINTS
from qs_analytics.coint import engle_granger_both
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
        calc = pair_view.pair_view(c)[1]
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        st.stop()
    spread = calc["spread"].dropna()
    legs = calc[["y", "x"]].dropna()
    if scope == "the rolling window":
        spread = spread.iloc[-c.window :]
        legs = legs.iloc[-c.window :]
    res = adf_test(spread.to_numpy())
    # Engle–Granger on the same points: the test for a spread whose β is estimated from them
    try:
        eg = engle_granger_both(legs["y"].to_numpy(), legs["x"].to_numpy()) if len(legs) >= MIN_EG_POINTS else None
    except ValueError:
        eg = None
    st.session_state["_adf_eg"] = (eg, len(legs))
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
    eg, n_eg = st.session_state.get("_adf_eg", (None, 0))
    st.subheader("Engle–Granger (the spread's β is estimated: this is the test to trust)")
    if eg is None:
        notices.needs_more("Engle–Granger test", max(0, MIN_EG_POINTS - n_eg), n_eg)
    else:
        best = eg.best
        verdict = "cointegrated" if best.cointegrated_at("5%") else "not cointegrated"
        st.markdown(f"**Engle–Granger: {verdict} at 5 %** (better direction p = {best.p_value:.4f}, MacKinnon "
                    "residual-based p-values, trend c, statsmodels `coint`).")
        st.dataframe(eg_table(eg).assign(direction=[f"{pair.split('/')[0]} on {pair.split('/')[1]}",
                                                    f"{pair.split('/')[1]} on {pair.split('/')[0]}"]),
                     hide_index=True)  # fmt: skip
    st.subheader(f"Plain ADF: {res.verdict}")
    st.caption("Plain ADF (statsmodels adfuller) on the spread: its critical values are right for a fixed, known "
               "spread; with a β fitted on the same data they are too lenient, so read the Engle–Granger verdict "
               "above for a fitted pair.")
    st.caption(f"{pair}, {regression} fair value, {interval} candles, {n} points, as of {as_of}")
    if not res.ran:
        if res.needs:
            notices.needs_more("ADF test", res.needs, n)
    else:
        cols = st.columns(4)
        cols[0].metric("ADF statistic", f"{res.statistic:.3f}")
        cols[1].metric("ADF p-value", f"{res.p_value:.4f}")
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
