"""Quant-Stream dashboard: `streamlit run dashboard/app.py`. A router: sidebar, alert toasts, pages."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import access, alerts_feed, data, sidebar  # noqa: E402
from dashboard.safe import md  # noqa: E402

# Not "pages/": a directory of that name beside the entry point puts Streamlit in its v1 multipage mode.
PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="Quant-Stream", page_icon=":material/monitoring:", layout="wide")

try:
    cfg = data.settings()
except data.Unavailable as exc:
    st.error(md(exc))
    st.stop()

PAGES_BY_SECTION = {
    "Live": [
        st.Page(PAGES / "live_pair.py", title="Live pair", icon=":material/bolt:", default=True),
        st.Page(PAGES / "markets.py", title="Markets", icon=":material/public:"),
        st.Page(PAGES / "order_book.py", title="Order book", icon=":material/stacked_bar_chart:"),
        st.Page(PAGES / "adf.py", title="ADF test", icon=":material/science:"),
    ],
    "Research": [
        st.Page(PAGES / "research.py", title="Pair research", icon=":material/travel_explore:"),
        st.Page(PAGES / "backtest.py", title="Backtest", icon=":material/query_stats:"),
    ],
    "Data": [
        st.Page(PAGES / "history.py", title="History and export", icon=":material/history:"),
        st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload_file:"),
    ],
    "Operate": [
        st.Page(PAGES / "alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page(PAGES / "system.py", title="System", icon=":material/monitor_heart:"),
    ],
}
# The navigation exists (hidden) behind the login gate too, so a deep link such as /system survives signing in.
locked = access.locked(cfg)
nav = st.navigation(PAGES_BY_SECTION, position="hidden" if locked else "sidebar")
if locked:
    access.login_form(cfg)  # stops the script

st.session_state["_controls"] = sidebar.render(cfg)
alerts_feed.watch(st.session_state["_controls"])
nav.run()
