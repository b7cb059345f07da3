"""Order book: each symbol's local book from the worker's book role (issue 11), live at the book's cadence."""

from __future__ import annotations

import streamlit as st

from dashboard import book_feed, data
from dashboard.components import book_views, charts, notices
from dashboard.frames import fmt_time
from dashboard.safe import md
from dashboard.sidebar import Controls

c: Controls = st.session_state["_controls"]
st.title("Order book")

BOOK_REFRESH_S = 1.0  # the book role writes every 100 ms of event time; a redraw a second is what a chart can show

log_y = st.toggle("Log quantity axis", value=False, key="book_log_y")
levels = st.slider("Levels in the table", 5, 50, 10, key="book_table_levels")


@st.fragment(run_every=BOOK_REFRESH_S if c.refresh_s is not None else None)
def books() -> None:
    symbols = list(c.symbols)
    try:
        depth = book_feed.order_books(symbols)
        metrics = book_feed.book_metrics(symbols)
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    for sym in symbols:
        st.subheader(md(sym))
        book = depth.get(sym)
        if not book:
            st.info(md(f"No order book for {sym} yet: the worker's book role builds it from stream:depth, which "
                       "ingest fills when it runs with DEPTH=true."))
            continue
        when = fmt_time(book["event_time"], c.tz) if book.get("event_time") else "no event yet"
        st.caption(md(f"update id {book.get('last_update_id')} · event time {when}"))
        if book.get("stale"):
            st.warning(md(f"{sym}: the book is stale (a gap in the depth stream, or no snapshot yet); it shows "
                          "its last good state until it resynchronises."))
        left, right = st.columns([3, 2])
        with left:
            st.plotly_chart(book_views.depth_figure(book, log_y), config=charts.CONFIG, key=f"depth_{sym}")
        with right:
            st.dataframe(book_views.levels_table(book, levels), hide_index=True)
            m = metrics.get(sym) or {}
            st.dataframe(book_views.metrics_table(m), hide_index=True,
                         column_config={"value": st.column_config.NumberColumn(format="%.6g")})


books()
