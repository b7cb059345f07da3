"""The live pair page's entry cost: walking both legs' order books at a chosen notional (issue 11)."""

from __future__ import annotations

import streamlit as st

from dashboard import book_feed, data
from dashboard.components import book_views
from dashboard.safe import md
from dashboard.sidebar import Controls

BOOK_REFRESH_S = 1.0


def entry_cost(c: Controls) -> None:
    """A notional input, then a fragment that re-walks the books at the book's cadence."""
    notional = st.number_input("Entry notional per leg (quote)", min_value=1.0, max_value=1e9, value=10_000.0,
                               step=1_000.0, key="entry_notional")

    @st.fragment(run_every=BOOK_REFRESH_S if c.refresh_s is not None else None)
    def _cost() -> None:
        try:
            books = book_feed.order_books([c.y, c.x])
        except data.Unavailable as exc:
            st.caption(md(str(exc)))
            return
        y_book, x_book = books.get(c.y), books.get(c.x)
        if not y_book or not x_book:
            st.caption("Entry cost: no order books from the worker's book role yet (ingest with DEPTH=true).")
            return
        table = book_views.spread_entry_cost(y_book, x_book, notional)
        stale = [s for s, b in ((c.y, y_book), (c.x, x_book)) if b.get("stale")]
        st.caption(md(f"Cost of entering {c.pair} at {notional:,.0f} per leg, walking each book from its mid "
                      "(blank: deeper than the levels the book role publishes)"
                      + (f"; stale book: {', '.join(stale)}" if stale else "")))
        st.dataframe(table, hide_index=True,
                     column_config={k: st.column_config.NumberColumn(format="%.3f")
                                    for k in ("Y leg (bps)", "X leg (bps)", "both legs (bps)")})

    _cost()
