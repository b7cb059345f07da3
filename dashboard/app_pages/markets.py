"""Markets: every configured symbol at a glance, and how their returns move together."""

from __future__ import annotations

import streamlit as st

from dashboard import candles_live, data
from dashboard.components import charts, notices, panels
from dashboard.features import return_correlation, summary
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


markets()
