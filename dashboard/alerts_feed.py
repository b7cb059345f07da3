"""A small sidebar fragment on every page: reads `stream:alerts` from the last seen id and toasts new alerts; and
the alert history as a table for the Alerts page and its CSV download."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import data, live
from dashboard.safe import md
from dashboard.sidebar import Controls
from qs_common import keys

ALERTS_HELD = 2_000
HISTORY_COLUMNS = ("time_utc", "ts", "id", "rule_id", "rule_name", "expression", "pair", "symbol", "metric", "value",
                   "threshold")  # fmt: skip


def describe(row: pd.Series) -> str:
    value = row.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    # a pair rule's alert names its pair, a symbol rule's its symbol (the other column is empty: nan)
    where = next((v for v in (row.get("pair"), row.get("symbol")) if isinstance(v, str) and v), "")
    return f"{where}: {row.get('metric', '')} = {shown}"


def _rule_text(raw: object, field: str) -> str:
    try:
        rule = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return ""
    if not isinstance(rule, dict):
        return ""
    if field == "expression" and "metric" in rule:
        m = f"|{rule['metric']}|" if rule.get("abs_value") else str(rule["metric"])
        th = rule.get("threshold")
        return f"{m} {rule.get('op', '')} {th:g}" if isinstance(th, int | float) else f"{m} {rule.get('op', '')} {th}"
    return str(rule.get(field) or "")


def history(held: pd.DataFrame) -> pd.DataFrame:
    """Fired alerts, newest first, one row each with the stream entry id (the webhook's idempotency key) and the
    rule's name and expression from the rule stored with the alert; its webhook URL is left out."""
    if held.empty:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    out = pd.DataFrame(index=held.index)
    ts = pd.to_numeric(held.get("ts"), errors="coerce")
    out["time_utc"] = pd.to_datetime(ts, unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    out["ts"] = ts
    rules = held["rule"] if "rule" in held else pd.Series("", index=held.index)
    for col in HISTORY_COLUMNS[2:]:
        if col in ("rule_name", "expression"):
            out[col] = [_rule_text(r, "name" if col == "rule_name" else col) for r in rules]
        elif col == "threshold":  # older alerts have no threshold field: the rule stored with them has it
            from_rule = pd.Series([float(_rule_text(r, col) or "nan") for r in rules], index=held.index)
            out[col] = pd.to_numeric(held[col], errors="coerce").fillna(from_rule) if col in held else from_rule
        else:
            out[col] = held.get(col, pd.NA)
    return out.iloc[::-1].reset_index(drop=True)


def poll_alerts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all held alerts, the ones new since the last poll); the first poll toasts nothing."""
    first = live.tail(keys.ALERTS_STREAM, initial=ALERTS_HELD, max_rows=ALERTS_HELD).last_id is None
    t, new = live.poll(keys.ALERTS_STREAM, initial=ALERTS_HELD, max_rows=ALERTS_HELD)
    return t.frame, (pd.DataFrame() if first else new)


def watch(controls: Controls) -> None:
    every = None if controls.refresh_s is None else max(controls.refresh_s, 1.0)

    @st.fragment(run_every=every)
    def _watch() -> None:
        try:
            held, new = poll_alerts()
        except data.Unavailable:
            return  # the pages say so; the sidebar stays quiet
        for _, row in new.tail(5).iterrows():
            st.toast(md(f"Alert: {describe(row)}"), icon=":material/notifications:")
        if not held.empty:
            st.caption(md(f"{len(held)} alert(s) fired; latest: {describe(held.iloc[-1])}"))

    with st.sidebar:
        _watch()
