"""Alert rules as stored in `alerts:rules` (id → JSON), validated by the worker's own rule model.

A webhook URL often carries its secret in the path (Slack's do): the rules table shows only its scheme and host;
the full URL is in the rule's JSON, shown as text in the editor, never as a link."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from qs_analytics.alerts import AlertRule


def _problems(err: ValueError) -> list[str]:
    if isinstance(err, ValidationError):
        return [f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in err.errors()]
    return [str(err)]


def new_rule(expression: str, **fields: Any) -> tuple[AlertRule | None, list[str]]:
    """A rule with a fresh id from a short expression (`z > 2`, `|z| >= 2.5`, `adf_p < 0.05`) and other fields."""
    try:
        return AlertRule.from_expression(uuid.uuid4().hex[:12], expression, **fields), []
    except ValueError as err:
        return None, _problems(err)


def parse_json(text: str, rule_id: str) -> tuple[AlertRule | None, list[str]]:
    """An edited rule; its id stays the stored one."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        return None, [f"not JSON: {exc}"]
    if not isinstance(body, dict):
        return None, ["a rule is a JSON object"]
    try:
        return AlertRule.model_validate({**body, "id": rule_id}), []
    except ValueError as err:
        return None, _problems(err)


def load_all(raw: dict[str, str]) -> list[dict[str, Any]]:
    """Stored rules as rows; a rule the model rejects is still listed, with the reason."""
    rows = []
    for rid, text in sorted(raw.items()):
        row: dict[str, Any] = {"id": rid}
        try:
            rule = AlertRule.from_json(text)
        except ValueError as err:
            row["problem"] = "; ".join(_problems(err))
        else:
            row.update({"expression": rule.expression, **rule.model_dump(mode="json"), "id": rid})
            row["webhook"] = masked(rule.webhook)
        rows.append(row)
    return rows


def masked(url: str | None) -> str:
    """`https://hooks.example.com/…`: enough to recognise the endpoint, not its secret path."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
