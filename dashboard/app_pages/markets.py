"""Markets: every active symbol at a glance, the engine's per-symbol metrics (exportable), and how their
returns move together."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import candles_live, data
from dashboard.components import charts, notices, panels
from dashboard.features import SYMBOL_METRICS, return_correlation, summary, symbol_metrics
from dashboard.frames import fmt_time
from dashboard.safe import csv_text, filename, md
from dashboard.sidebar import Controls

c: Controls = st.session_state["_controls"]
st.title(f"Markets · {c.interval}")


@st.fragment(run_every=c.chart_refresh_s)
def markets() -> None:
    symbols = list(c.symbols)
    try:
        frames = candles_live.live_candles(symbols, c.interval, c.candles)
        books = data.books(symbols)
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    rows = []
    for sym in symbols:
        s = summary(frames[sym])
        raw = books.get(sym)
        b = panels.book_metrics(raw) if raw else {}
        rows.append(
            {
                "symbol": sym,
                "price": s.get("last"),
                "change %": s.get("change_pct"),
                "volatility % / candle": s.get("volatility_pct"),
                "volume": s.get("volume"),
                "spread (bps)": b.get("spread_bps"),
                "bid": b.get("bid"),
                "ask": b.get("ask"),
                "candles": int(s.get("candles", 0)),
            }
        )
    st.caption(f"Change, volatility and volume over the last {c.candles} {c.interval} candles available.")
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "price": st.column_config.NumberColumn(format="%.4f"),
            "change %": st.column_config.NumberColumn(format="%+.3f"),
            "volatility % / candle": st.column_config.NumberColumn(format="%.4f"),
            "volume": st.column_config.NumberColumn(format="%.2f"),
            "spread (bps)": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    corr = return_correlation(frames)
    if corr.empty:
        notices.needs_more("Correlation heatmap", 4, min((len(f) for f in frames.values()), default=0))
    else:
        st.plotly_chart(charts.heatmap(corr, "Correlation of log returns"), config=charts.CONFIG)


@st.fragment(run_every=c.chart_refresh_s)
def engine_metrics() -> None:
    """The worker's per-symbol metrics (symbol:stats, tick level over SYMBOL_WINDOW trades) and GARCH σ
    (symbol:garch) for every active symbol."""
    st.subheader("Per-symbol metrics (engine)")
    try:
        table = symbol_metrics(data.symbol_records(list(c.symbols)))
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    st.caption(
        "From the worker, over its last SYMBOL_WINDOW trades of each symbol: momentum = slope of ln(price) on "
        "time (bps per minute), price z, realised vol = std of per-trade log returns, annualised vol = "
        "√(Σr² / elapsed years); GARCH σ from the newest fit on 1m returns. Empty = not computed yet."
    )
    shown = table.drop(columns=["GARCH fitted (ms UTC)"])
    shown["GARCH fitted"] = [fmt_time(int(t), c.tz) if t == t else "—" for t in table["GARCH fitted (ms UTC)"]]
    fmt = {k: st.column_config.NumberColumn(format="%.6g") for k in SYMBOL_METRICS if k in shown}
    st.dataframe(shown, hide_index=True, key="symbol_metrics", column_config=fmt)
    st.download_button("Download per-symbol metrics (CSV)", csv_text(table), filename("symbol-metrics.csv"),
                       "text/csv", key="dl_symbol_metrics")  # fmt: skip


markets()
engine_metrics()


# ---- GARCH(1,1) per symbol (the worker refits hourly on 1m candles; issue 9) -----------------------------------
st.subheader("GARCH(1,1) volatility")
st.caption(
    "arch package, constant mean, normal errors, on 100 × 1m log returns; σ in per cent per 1m return, annualised "
    "× √(periods per year). Refit by the worker every GARCH_EVERY_S; the same figures are in symbol:stats as garch_*."
)
if st.button("Refit GARCH now", key="garch_refit"):
    with st.spinner("Fitting…"):
        try:
            bad = [f for f in data.refit_garch() if f.get("error")]
            for f in bad:
                st.warning(md(f"{f['symbol']}: {f['error']}"))
        except data.Unavailable as exc:
            notices.unavailable(str(exc))
try:
    fits = data.garch_fits()
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    fits = []
if not fits:
    st.info("No GARCH fit stored yet (the worker fits each symbol's last GARCH_LOOKBACK 1m candles).")
else:
    garch = pd.DataFrame(fits)
    garch.insert(1, "fitted", [fmt_time(int(t), c.tz) for t in garch["fitted_ms"]])
    cols = ["symbol", "fitted", "sigma_now", "sigma_next", "sigma_5", "sigma_60", "sigma_next_ann", "omega", "alpha",
            "beta", "persistence", "nobs", "converged"]  # fmt: skip
    st.dataframe(garch[[k for k in cols if k in garch]], hide_index=True, key="garch_table",
                 column_config={k: st.column_config.NumberColumn(format="%.5g") for k in cols[2:11]})  # fmt: skip
    st.download_button("Download GARCH fits (CSV)", csv_text(garch), filename("garch-fits.csv"), "text/csv",
                       key="dl_garch")  # fmt: skip
