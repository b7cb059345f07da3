"""The login gate: with ACCESS_TOKEN set, nothing but a password field until the session has given the token.

The session remembers a good answer in `st.session_state` (per browser tab, in the server's memory; never in a
cookie or the URL). Without ACCESS_TOKEN there is no gate: the launcher binds to loopback by default.
"""

from __future__ import annotations

import hmac

import streamlit as st

from qs_common.settings import Settings

_PASSED = "_access_ok"


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken does not reveal how much of the token was right."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def locked(cfg: Settings) -> bool:
    """True while this session must still give the token."""
    return bool(cfg.access_token) and not st.session_state.get(_PASSED)


def login_form(cfg: Settings) -> None:
    """Draw the password form; on the right token remember the session and rerun, else stop the script here."""
    st.title("Quant-Stream")
    with st.form("access_gate"):
        given = st.text_input("Access token", type="password", key="access_token_input")
        sent = st.form_submit_button("Sign in")
    if sent:
        if token_matches(given, cfg.access_token):
            st.session_state[_PASSED] = True
            st.rerun()
        st.error("That is not the access token.")
    st.stop()
