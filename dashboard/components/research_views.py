"""Drawing for the Research page: the scan table, a pair's diagnostics (Hurst, variance ratio, lead-lag,
spread) and the Johansen panel. Every number is labelled with the test it comes from."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.components import charts, notices
from dashboard.frames import align_closes
from dashboard.safe import md, plotly
from qs_analytics.johansen import LEVELS, johansen
from qs_analytics.leadlag import lead_lag
from qs_analytics.meanrev import hurst, variance_ratio

SCAN_LABELS = {
    "rank": "rank", "y": "y", "x": "x", "p_value": "EG p (better dir.)", "stat": "EG stat",
    "p_y_on_x": "EG p a on b", "p_x_on_y": "EG p b on a", "corr": "corr (log returns)", "beta": "OLS β",
    "alpha": "OLS α", "half_life": "half-life (candles)", "hurst": "Hurst", "spread_sigma": "spread σ",
    "z": "z now", "liquidity": "liquidity (median quote vol.)", "spread_bps": "quoted spread (bps)",
    "sym_a": "a", "sym_b": "b", "n": "points",
}  # fmt: skip
SCAN_COLUMN_CONFIG = {
    "EG p (better dir.)": st.column_config.NumberColumn(format="%.2e"),
    "EG p a on b": st.column_config.NumberColumn(format="%.2e"),
    "EG p b on a": st.column_config.NumberColumn(format="%.2e"),
    "EG stat": st.column_config.NumberColumn(format="%.3f"),
    "corr (log returns)": st.column_config.NumberColumn(format="%.3f"),
    "OLS β": st.column_config.NumberColumn(format="%.6g"),
    "OLS α": st.column_config.NumberColumn(format="%.6g"),
    "half-life (candles)": st.column_config.NumberColumn(format="%.1f"),
    "Hurst": st.column_config.NumberColumn(format="%.3f"),
    "spread σ": st.column_config.NumberColumn(format="%.6g"),
    "z now": st.column_config.NumberColumn(format="%+.2f"),
    "liquidity (median quote vol.)": st.column_config.NumberColumn(format="%.0f"),
    "quoted spread (bps)": st.column_config.NumberColumn(format="%.2f"),
}


def scan_table(ranked: pd.DataFrame) -> pd.DataFrame:
    cols = ["rank", "y", "x", "p_value", "stat", "half_life", "hurst", "corr", "beta", "alpha", "spread_sigma", "z",
            "liquidity", "spread_bps", "sym_a", "sym_b", "p_y_on_x", "p_x_on_y"]  # fmt: skip
    return ranked[[c for c in cols if c in ranked]].rename(columns=SCAN_LABELS)


def _fmt(v: float, spec: str = ".4f") -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, spec)


def pair_diagnostics(yf: pd.DataFrame, xf: pd.DataFrame, y: str, x: str, beta: float, alpha: float,
                     tz: str) -> None:  # fmt: skip
    """Hurst and variance ratio of the scan's OLS spread y − βx − α, and the legs' lead-lag."""
    both = align_closes(yf, xf)
    if len(both) < 50:
        notices.needs_more("Pair diagnostics", 50 - len(both), len(both))
        return
    spread = both["y"].to_numpy() - beta * both["x"].to_numpy() - alpha
    q = max(2, min(10, len(spread) // 10))
    cols = st.columns(4)
    try:
        h = hurst(spread, min(20, len(spread) // 3))
    except ValueError:
        h = math.nan
    cols[0].metric("Hurst exponent (spread)", _fmt(h, ".3f"), help="0.5 random walk, below 0.5 mean-reverting")
    try:
        vr = variance_ratio(spread, q)
        cols[1].metric(f"Variance ratio VR({q})", _fmt(vr.vr, ".3f"), help="Lo–MacKinlay; below 1 mean-reverting")
        cols[2].metric("VR robust z* p-value", _fmt(vr.p_value, ".4f"))
    except ValueError as exc:
        cols[1].metric(f"Variance ratio VR({q})", "—", help=str(exc))
    ll = lead_lag(both["x"].to_numpy(), both["y"].to_numpy(), min(20, len(both) // 4))
    lead = "none" if ll.best_lag == 0 else (f"{x} leads by {ll.best_lag}" if ll.best_lag > 0
                                            else f"{y} leads by {-ll.best_lag}")  # fmt: skip
    cols[3].metric("Lead-lag (largest |ρ|)", lead, help=f"ρ = {_fmt(ll.best_rho, '.3f')} at lag {ll.best_lag}")
    left, right = st.columns(2)
    rho = [None if not math.isfinite(r) else r for r in ll.rho]
    colours = ["#ef5350" if k == ll.best_lag else "#5c6bc0" for k in ll.lags]
    title = plotly(f"Cross-correlation of returns: ρ(k) = corr(r {x} at t, r {y} at t+k)")
    fig = go.Figure({"data": [{"type": "bar", "x": ll.lags, "y": rho, "marker": {"color": colours}}],
                     "layout": {"title": {"text": title}, "height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                                "xaxis": {"title": {"text": "lag k (candles; k > 0: x leads)"}}}})  # fmt: skip
    left.plotly_chart(fig, config=charts.CONFIG, key="leadlag_chart")
    sp = pd.DataFrame({"open_time": both["open_time"], "spread (scan OLS)": spread})
    right.plotly_chart(charts.lines(sp, ["spread (scan OLS)"], tz, plotly(f"Spread {y} − β·{x} − α"), 300),
                       config=charts.CONFIG, key="scan_spread_chart")  # fmt: skip


def johansen_panel(frames: dict[str, pd.DataFrame]) -> None:
    syms = list(frames)
    merged: pd.DataFrame | None = None
    for s, f in frames.items():
        part = f[["open_time", "close"]].rename(columns={"close": s})
        merged = part if merged is None else merged.merge(part, on="open_time", how="inner")
    assert merged is not None
    try:
        res = johansen(merged[syms].to_numpy(dtype="float64"))
    except ValueError as exc:
        st.warning(md(f"Johansen test: {exc}"))
        return
    st.caption(md(f"statsmodels coint_johansen, constant term, 1 lagged difference, {len(merged)} common candles"))
    rows: list[dict[str, Any]] = []
    for r in range(len(syms)):
        row: dict[str, Any] = {"H0: rank ≤": r, "trace": res.trace[r]}
        row.update({f"trace {k}": res.trace_crit[r][k] for k in LEVELS})
        row["max-eigen"] = res.max_eig[r]
        row.update({f"max-eigen {k}": res.max_eig_crit[r][k] for k in LEVELS})
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    c1, c2 = st.columns(2)
    c1.metric("Rank (trace test, 95 %)", res.rank_trace)
    c2.metric("Rank (max-eigenvalue test, 95 %)", res.rank_max_eig)
    st.dataframe(pd.DataFrame({"symbol": syms, "hedge weight (1st eigenvector)": res.hedge_weights}), hide_index=True)


def eg_table(both: Any) -> pd.DataFrame:
    """Engle–Granger both directions as a table (the ADF page and the scan use the same words)."""
    out = []
    for name, r in (("y on x", both.y_on_x), ("x on y", both.x_on_y)):
        out.append({"direction": name, "EG statistic": r.statistic, "EG p-value (MacKinnon)": r.p_value,
                    **{f"critical {k}": v for k, v in r.critical_values.items()}, "β": r.beta, "lags": r.lags_used,
                    "verdict (5 %)": "cointegrated" if r.cointegrated_at("5%") else "not cointegrated"})  # fmt: skip
    return pd.DataFrame(out)

