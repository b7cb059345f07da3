"""The sidebar's control panel of the live system: the selected pair's engine settings, and adding or removing
symbols and pairs. Every change is a call to the worker API (`control_api`), made in a widget callback so the
rerun that follows already shows the new registry; the API's answer (or refusal) is shown once, as text.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import control_api
from dashboard.control_api import Refused, Registry
from dashboard.safe import md
from qs_common.control import PairSettings

NOTICE = "_control_notice"


def _notice(kind: str, text: str) -> None:
    st.session_state[NOTICE] = (kind, text)


def show_notice() -> None:
    """The last change's outcome, once (success, or the API's refusal as plain text)."""
    kind, text = st.session_state.pop(NOTICE, ("", ""))
    if kind == "error":
        st.error(md(text), icon=":material/block:")
    elif kind == "success":
        st.success(md(text), icon=":material/check:")
    elif kind == "info":
        st.info(md(text))


def _call(fn: Any, *args: Any, ok: str) -> bool:
    try:
        fn(*args)
    except (Refused, ValueError) as exc:
        _notice("error", str(exc))
        return False
    _notice("success", ok)
    return True


# ---- the selected pair's engine settings ------------------------------------------------------------------
def _keys(ps: PairSettings, version: int) -> dict[str, str]:
    # the version in the key: after any change the form shows the stored settings, not the old inputs
    tag = f"{ps.id}:{version}"
    fields = ("window", "beta_source", "delta", "obs_noise", "z_entry", "z_exit", "price_source")
    return {f: f"eng_{f}:{tag}" for f in fields}


def _apply(ps: PairSettings, widget: dict[str, str]) -> None:
    wanted = {f: st.session_state[k] for f, k in widget.items()}
    wanted["window"] = int(wanted["window"])
    body = control_api.changes(ps, wanted)
    if not body:
        _notice("info", f"{ps.id}: nothing changed.")
        return
    said = ", ".join(f"{k} {getattr(ps, k)} → {v}" for k, v in body.items())
    _call(control_api.update_pair, ps.id, body, ok=f"{ps.id}: {said}. The engine restarts on these settings.")


def engine_settings(ps: PairSettings, version: int) -> None:
    """The form behind `PUT /pairs/Y-X`: what the worker's engine for this pair uses, and the candle view too."""
    k = _keys(ps, version)
    with st.expander(md(f"Engine settings · {ps.id}"), expanded=True), st.form("engine_form", border=False):
        st.number_input("Window (observations)", 2, 100_000, ps.window, step=10, key=k["window"],
                        help="ticks for the engine, candle closes for the candle-level view")  # fmt: skip
        sources = list(control_api.BETA_SOURCES)
        st.selectbox("β source", sources, index=sources.index(ps.beta_source), key=k["beta_source"],
                     format_func=lambda s: control_api.REGRESSION_OF[str(s)])  # fmt: skip
        a, b = st.columns(2)
        a.number_input("Kalman δ", 1e-12, 0.5, ps.delta, step=1e-9, format="%.2e", key=k["delta"])
        b.number_input("Kalman R", 1e-9, 1e9, ps.obs_noise, step=0.1, format="%g", key=k["obs_noise"])
        a.number_input("z entry", 0.1, 20.0, ps.z_entry, step=0.1, key=k["z_entry"])
        b.number_input("z exit", 0.0, 20.0, ps.z_exit, step=0.1, key=k["z_exit"])
        prices = control_api.PRICE_SOURCES
        st.radio("Leg price", prices, index=prices.index(ps.price_source), key=k["price_source"], horizontal=True,
                 help="last trade, or the book's mid")  # fmt: skip
        st.form_submit_button("Apply to the engine", on_click=_apply, args=(ps, k), type="primary", key="apply_engine")


# ---- symbols and pairs -------------------------------------------------------------------------------------
def _add_symbol() -> None:
    text = str(st.session_state.get("new_symbol", "")).strip()
    if not text:
        _notice("error", "Type a symbol first, like SOLUSDT.")
        return
    if _call(control_api.add_symbol, text, ok=f"{text.upper()} is active: ingest subscribes and backfills it."):
        st.session_state["new_symbol"] = ""


def _remove_symbol() -> None:
    sym = st.session_state.get("drop_symbol")
    if sym:
        _call(control_api.remove_symbol, sym, ok=f"{sym} removed; its stored history stays.")


def _add_pair() -> None:
    y, x = st.session_state.get("new_y"), st.session_state.get("new_x")
    if not y or not x or y == x:
        _notice("error", "Pick two different symbols for Y and X.")
        return
    if _call(control_api.add_pair, y, x, ok=f"{y}/{x} added: the worker computes it from its legs' next ticks."):
        st.session_state["pair"] = f"{y}/{x}"  # show the new pair


def _remove_pair(pid: str) -> None:
    if _call(control_api.remove_pair, pid, ok=f"{pid} removed; its legs stay active."):
        st.session_state.pop("pair", None)


def _keep(key: str, options: tuple[str, ...]) -> None:
    """Forget a choice that is no longer offered (a symbol removed elsewhere): the widget starts afresh."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def manage(reg: Registry, selected: str | None) -> None:
    for key in ("drop_symbol", "new_y", "new_x"):
        _keep(key, reg.symbols)
    with st.expander("Symbols and pairs", expanded=False):
        st.caption(md(f"Active symbols: {', '.join(reg.symbols) or 'none'} · {len(reg.pairs)} pair(s)"))
        with st.form("add_symbol_form", border=False):
            st.text_input("Add a symbol", key="new_symbol", placeholder="SOLUSDT", max_chars=30)
            st.form_submit_button("Add symbol", on_click=_add_symbol, key="add_symbol_btn")
        if reg.symbols:
            st.selectbox("Symbol", reg.symbols, key="drop_symbol")
            st.button("Remove symbol", on_click=_remove_symbol, key="drop_symbol_btn")
        if len(reg.symbols) >= 2:
            with st.form("add_pair_form", border=False):
                a, b = st.columns(2)
                a.selectbox("Y (regressed)", reg.symbols, key="new_y")
                b.selectbox("X", reg.symbols, index=len(reg.symbols) - 1, key="new_x")
                st.form_submit_button("Add pair", on_click=_add_pair, key="add_pair_btn")
        if selected:
            st.button(md(f"Remove pair {selected}"), on_click=_remove_pair, args=(selected,), key="drop_pair_btn")
