"""Alerts: create, edit and delete rules (the worker evaluates them); the history of fired alerts."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import alert_rules, data
from dashboard.alerts_feed import poll_alerts
from dashboard.components import notices
from dashboard.frames import display_time
from dashboard.safe import csv_text, md
from dashboard.sidebar import Controls
from qs_analytics.names import SYMBOL_METRIC_NAMES

c: Controls = st.session_state["_controls"]
st.title("Alerts")

try:
    raw = data.alert_rules()
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()

rules = alert_rules.load_all(raw)
st.subheader(f"Rules ({len(rules)})")
if rules:
    st.dataframe(rules, hide_index=True)
else:
    st.caption("No rules yet.")

st.subheader("New rule")
kinds = ("Pair metric", "Symbol metric (price, momentum, volatility, GARCH)")
kind = st.radio("Watch", kinds, horizontal=True, key="rule_kind")
on_symbol = kind == kinds[1]
with st.form("new_rule", clear_on_submit=False):
    a, b, h, cd = st.columns([2, 2, 1, 1])
    if on_symbol:
        symbols = list(dict.fromkeys([*c.symbols, *data.settings().symbols, "*"]))
        target = a.selectbox("Symbol (* = every symbol)", symbols, key="rule_symbol")
        expression = b.text_input(
            "Condition",
            value="garch_sigma_next_ann > 100",
            key="rule_expr_symbol",
            help="metric, operator, number, on the symbol's statistics: "
            + ", ".join(SYMBOL_METRIC_NAMES)
            + " (short: momentum, z = price_z, sigma_next)",
        )
    else:
        pairs = list(dict.fromkeys([c.pair, *("/".join(legs) for legs in data.settings().pair_legs()), "*"]))
        target = a.selectbox("Pair (* = every pair)", pairs, key="rule_pair")
        expression = b.text_input(
            "Condition",
            value=f"|z| >= {c.z_entry:g}",
            key="rule_expr",
            help="metric, operator, number: z > 2, |z| >= 2.5, adf_p < 0.05, corr < 0.5",
        )
    hysteresis = h.number_input("Hysteresis", 0.0, value=0.5, step=0.1, key="rule_hyst")
    cooldown_s = cd.number_input("Cool-down (s)", 0, value=60, step=10, key="rule_cooldown")
    name = st.text_input("Name", value="", key="rule_name")
    if st.form_submit_button("Create rule"):
        where = {"symbol": target} if on_symbol else {"pair": target}
        rule, problems = alert_rules.new_rule(
            expression, **where, hysteresis=hysteresis, cooldown_ms=int(cooldown_s * 1000), name=name
        )
        if rule is None:
            st.error("Rule not saved:\n\n" + "\n".join(f"- {md(p)}" for p in problems))
        else:
            data.save_alert_rule(rule.id, rule.to_json())
            st.success(md(f"Saved rule {rule.id}: {rule.expression}."))
            st.rerun()

if raw:
    st.subheader("Edit or delete")
    chosen = st.selectbox("Rule", sorted(raw), key="rule_edit_id")
    try:
        current = json.dumps(json.loads(raw[chosen]), indent=2)
    except ValueError:
        current = raw[chosen]
    text = st.text_area("Rule JSON", value=current, height=260, key=f"rule_edit_text_{chosen}")
    s, d = st.columns(2)
    if s.button("Save changes", key="rule_save"):
        rule, problems = alert_rules.parse_json(text, chosen)
        if rule is None:
            st.error("Rule not saved:\n\n" + "\n".join(f"- {md(p)}" for p in problems))
        else:
            data.save_alert_rule(chosen, rule.to_json())
            st.success(md(f"Saved rule {chosen}."))
            st.rerun()
    if d.button("Delete rule", key="rule_delete"):
        data.delete_alert_rule(chosen)
        st.rerun()

st.subheader("Fired alerts")
try:
    held, _ = poll_alerts()
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
if held.empty:
    st.caption("No alert has fired yet.")
else:
    shown = held.iloc[::-1].copy()
    if "ts" in shown:
        shown.insert(0, "time", display_time(shown["ts"], c.tz))
    st.dataframe(shown.drop(columns=[col for col in ("rule",) if col in shown]), hide_index=True)
    st.download_button(
        "Download alert history (CSV)",
        csv_text(pd.DataFrame(held)),
        "alerts.csv",
        "text/csv",
        key="dl_alerts",
    )
