"""Alerts: create, edit and delete rules (the worker evaluates them and posts to their webhooks); the webhook
delivery counts; the history of fired alerts and its CSV download."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import alert_rules, data
from dashboard.alerts_feed import history, poll_alerts
from dashboard.components import notices
from dashboard.frames import display_time
from dashboard.safe import csv_text, md
from dashboard.sidebar import Controls
from qs_analytics.names import SYMBOL_METRIC_NAMES
from qs_common import control, keys

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
        active = data.redis_call(control.active_symbols, data.rds())
        symbols = list(dict.fromkeys([*c.symbols, *active, "*"]))
        target = a.selectbox("Symbol (* = every symbol)", symbols, key="rule_symbol")
        expression = b.text_input(
            "Condition",
            value="garch_sigma_next_ann > 100",
            key="rule_expr_symbol",
            help="metric, operator, number, on the symbol's statistics: "
            + ", ".join(SYMBOL_METRIC_NAMES)
            + " (short: momentum, z = price_z, vol_ann, spread_bps, imbalance, sigma_next)",
        )
    else:
        pairs = list(dict.fromkeys([c.pair, *data.redis_call(control.active_pairs, data.rds()), "*"]))
        target = a.selectbox("Pair (* = every pair)", pairs, key="rule_pair")
        expression = b.text_input(
            "Condition",
            value=f"|z| >= {c.z_entry:g}",
            key="rule_expr",
            help="metric, operator, number: z > 2, |z| >= 2.5, adf_p < 0.05, corr < 0.5",
        )
    hysteresis = h.number_input("Hysteresis", 0.0, value=0.5, step=0.1, key="rule_hyst")
    cooldown_s = cd.number_input("Cool-down (s)", 0, value=60, step=10, key="rule_cooldown")
    n, w = st.columns([1, 2])
    name = n.text_input("Name", value="", key="rule_name")
    webhook = w.text_input(
        "Webhook URL (optional)",
        value="",
        key="rule_webhook",
        help="http(s) URL: the worker POSTs each alert of this rule there as JSON (Slack-style endpoints, a bot), "
        "retried on failure; README, Alerts",
    )
    if st.form_submit_button("Create rule"):
        where = {"symbol": target} if on_symbol else {"pair": target}
        rule, problems = alert_rules.new_rule(
            expression,
            **where,
            hysteresis=hysteresis,
            cooldown_ms=int(cooldown_s * 1000),
            name=name,
            webhook=webhook or None,
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

st.subheader("Webhook delivery")
try:
    delivery = data.statuses().get(keys.STATUS_WORKER_WEBHOOKS)
except data.Unavailable:
    delivery = None
if delivery is None:
    st.caption("No webhook delivery reporting (it runs in the worker's analytics role).")
else:
    cols = st.columns(5)
    for col, (label, field) in zip(
        cols,
        (("Delivered", "delivered"), ("Failed attempts", "failures"), ("Retries", "retries"),
         ("Dropped", "dropped"), ("In hand", "in_hand")),
        strict=True,
    ):  # fmt: skip
        value = delivery.get(field)
        col.metric(label, value if isinstance(value, int) and not isinstance(value, bool) else "—")
    if delivery.get("last_error"):
        st.caption(md(f"Last delivery error: {delivery['last_error']}"))

st.subheader("Fired alerts")
try:
    held, _ = poll_alerts()
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
if held.empty:
    st.caption("No alert has fired yet.")
else:
    table = history(held)
    shown = table.copy()
    shown.insert(0, "time", display_time(shown["ts"], c.tz))
    st.dataframe(shown.drop(columns=["time_utc"]), hide_index=True)
    st.download_button(
        f"Download alert history (CSV, {len(table)} alerts)",
        csv_text(table),
        "alerts.csv",
        "text/csv",
        key="dl_alerts",
    )
    st.caption(
        f"The newest {len(table)} alerts held here; stream:alerts keeps about {keys.ALERTS_MAXLEN:,}. "
        "The id is the webhook's idempotency key."
    )
