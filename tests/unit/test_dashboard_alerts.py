"""The Alerts page: a rule's webhook (checked, stored, shown masked, never a link), the delivery counts, and the
alert history as CSV (through safe.csv_text)."""

from __future__ import annotations

import io
import json

import pandas as pd

from dashboard.alert_rules import masked
from dashboard.alerts_feed import HISTORY_COLUMNS, history
from dashboard.safe import csv_text
from qs_common import keys
from qs_common.status import write_status
from tests.unit.test_dashboard_app import run_page, services, texts  # noqa: F401  (services: the fixture)

HOOK = "https://hooks.example.com/services/T000/B000/secret-token"


def test_a_rule_with_a_webhook_is_checked_stored_and_shown_masked(services) -> None:  # noqa: F811
    r, _ = services
    r.delete(keys.ALERT_RULES)
    at = run_page("alerts.py")
    at.text_input(key="rule_expr").set_value("|z| >= 2")
    at.text_input(key="rule_webhook").set_value("ftp://example.com/x")
    at.form_submit_button[0].click().run()
    assert "Rule not saved" in at.error[0].value and "http" in at.error[0].value
    assert r.hlen(keys.ALERT_RULES) == 0
    at.text_input(key="rule_webhook").set_value(HOOK)
    at.form_submit_button[0].click().run()
    assert not at.exception
    rule = json.loads(next(iter(r.hgetall(keys.ALERT_RULES).values())))
    assert rule["webhook"] == HOOK
    at = run_page("alerts.py")
    table = at.dataframe[0].value
    assert list(table["webhook"]) == ["https://hooks.example.com/…"]  # the secret path is not on the screen
    assert "secret-token" not in texts(at)
    r.delete(keys.ALERT_RULES)


def test_the_delivery_counts_come_from_the_status_record(services) -> None:  # noqa: F811
    r, _ = services
    write_status(r, keys.STATUS_WORKER_WEBHOOKS, {"delivered": 7, "failures": 2, "retries": 2, "dropped": 1,
                                                  "in_hand": 0, "last_error": "[x](http://evil.example): HTTP 500"})
    at = run_page("alerts.py")
    got = {m.label: m.value for m in at.metric}
    assert (got["Delivered"], got["Failed attempts"], got["Dropped"]) == ("7", "2", "1")
    assert any("Last delivery error" in c.value and "](http" not in c.value for c in at.caption)  # inert text
    r.delete(f"status:{keys.STATUS_WORKER_WEBHOOKS}")


def test_the_history_csv_has_one_row_per_alert_without_the_webhook_and_nothing_a_spreadsheet_runs() -> None:
    rule = {"id": "r1", "metric": "zscore", "op": ">=", "threshold": 2.0, "abs_value": True, "name": "=HYPERLINK(1)",
            "webhook": HOOK}  # fmt: skip
    held = pd.DataFrame([
        {"id": "1723161600200-0", "rule_id": "r1", "rule": json.dumps(rule), "metric": "zscore", "value": -2.5,
         "threshold": 2.0, "pair": "ETHUSDT/BTCUSDT", "ts": 1_723_161_600_123},
        {"id": "1723161601000-0", "rule_id": "s1", "rule": "{not json", "metric": "price", "value": 61000.5,
         "symbol": "BTCUSDT", "ts": 1_723_161_601_000},
    ])  # fmt: skip
    table = history(held)
    assert tuple(table.columns) == HISTORY_COLUMNS
    back = pd.read_csv(io.StringIO(csv_text(table)), dtype=str, keep_default_na=False)
    assert list(back["id"]) == ["1723161601000-0", "1723161600200-0"]  # newest first
    first, second = back.iloc[1], back.iloc[0]
    assert first["time_utc"] == "2024-08-09T00:00:00.123Z" and first["expression"] == "|zscore| >= 2"
    assert first["rule_name"] == "'=HYPERLINK(1)" and float(first["value"]) == -2.5  # neutralised, number kept
    assert (second["symbol"], second["pair"], second["threshold"]) == ("BTCUSDT", "", "")
    assert HOOK not in csv_text(table)
    assert list(history(pd.DataFrame()).columns) == list(HISTORY_COLUMNS)


def test_masked_keeps_scheme_and_host_only() -> None:
    assert masked("http://127.0.0.1:8080/a/b?token=x") == "http://127.0.0.1:8080/…"
    assert masked(None) == "" and masked("") == ""
