"""Plain messages in place of charts and numbers that cannot be shown yet."""

from __future__ import annotations

import streamlit as st

from dashboard.safe import md


def needs_more(what: str, more: int, have: int | None = None) -> None:
    have_text = f" (have {have})" if have is not None else ""
    st.info(md(f"{what}: needs {more} more point{'s' if more != 1 else ''}{have_text}."))


def unavailable(message: str) -> None:
    # the message may quote what the API or Redis said, itself quoting a user's file
    st.warning(md(message))
