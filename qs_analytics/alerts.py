"""Alert rules on engine metrics, and their evaluation with hysteresis and cool-down (pure: no I/O, no clock).

A rule fires when its condition becomes true while it is armed and out of cool-down; it then disarms and
re-arms only once the value has crossed back past the threshold by the hysteresis margin (for `z > 2` with
hysteresis 0.5: after z ≤ 1.5). The cool-down is observation time: no second firing for the same rule and
pair before `cooldown_ms` after the last one. Rules are JSON (stored in the `alerts:rules` hash).

Expressions are parsed by one regular expression, never evaluated: `z > 2`, `|z| >= 2.5`, `adf_p < 0.05`.

A rule watches either pairs (`pair`: `Y/X` or `*`, the pair metrics of `stream:analytics`) or, when it has a
`symbol` (`SYMBOL` or `*` for every symbol), one symbol's statistics (`symbol:stats:{SYMBOL}`: price, momentum,
price z, volatility and the GARCH fields; `names.SYMBOL_METRIC_NAMES`), evaluated on each trade of that symbol
with the same hysteresis and cool-down. A rule without `symbol` is exactly the old pair rule.

A rule may name a `webhook` (http or https URL): the worker POSTs each of its alerts there (worker/webhooks.py).
The URL is checked here, so the dashboard and the worker refuse the same things. `default_rule` is the rule a
fresh install starts with (|z| >= 2 on every pair, re-armed below 0.5).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qs_analytics.names import resolve_metric, resolve_symbol_metric

Operator = Literal[">", ">=", "<", "<="]

_EXPR = re.compile(
    r"""^\s*(?:(?P<abs>\|)\s*(?P<am>[A-Za-z_][A-Za-z0-9_]*)\s*\||(?P<m>[A-Za-z_][A-Za-z0-9_]*))
        \s*(?P<op>>=|<=|>|<)\s*
        (?P<th>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)

WEBHOOK_MAX_LEN = 2_048  # what browsers and most servers accept in a request line
DEFAULT_RULE_ID = "default-z"


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    metric: str
    op: Operator
    threshold: float
    abs_value: bool = False  # compare |value| (the `|z| >= 2.5` form)
    pair: str = "*"  # `Y/X` or '*' for every pair
    symbol: str | None = None  # set (`SYMBOL` or '*'): a symbol rule on symbol:stats metrics, `pair` unused
    hysteresis: float = Field(0.0, ge=0.0)
    cooldown_ms: int = Field(0, ge=0)
    enabled: bool = True
    name: str = Field("", max_length=200)
    webhook: str | None = None  # http(s) URL each alert of the rule is POSTed to (worker/webhooks.py)

    @model_validator(mode="before")
    @classmethod
    def _known_metric(cls, data: object) -> object:
        # the metric's vocabulary depends on the rule's kind (pair or symbol), so it is resolved here
        if isinstance(data, dict) and isinstance(data.get("metric"), str):
            data = {**data, "metric": _resolve(data["metric"], data.get("symbol") is not None)}
        return data

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        return check_webhook(v)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().upper() or "*"
        if v != "*" and not (2 <= len(v) <= 30 and v.isascii() and v.isalnum()):
            raise ValueError(f"symbol must be letters and digits (2 to 30) or '*', got {v[:40]!r}")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("threshold must be a finite number")
        return v

    @field_validator("pair")
    @classmethod
    def _pair(cls, v: str) -> str:
        return v.strip().upper() or "*"

    @property
    def expression(self) -> str:
        m = f"|{self.metric}|" if self.abs_value else self.metric
        return f"{m} {self.op} {self.threshold:g}"

    @classmethod
    def from_expression(cls, rule_id: str, expression: str, **fields: object) -> AlertRule:
        """Build a rule from a short expression plus the other fields (pair, hysteresis, cooldown_ms, ...)."""
        metric, op, threshold, abs_value = parse_expression(expression, symbol=fields.get("symbol") is not None)
        return cls.model_validate(
            {"id": rule_id, "metric": metric, "op": op, "threshold": threshold, "abs_value": abs_value, **fields}
        )

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> AlertRule:
        return cls.model_validate_json(text)

    def condition(self, value: float) -> bool:
        return _compare(abs(value) if self.abs_value else value, self.op, self.threshold)

    def rearmed(self, value: float) -> bool:
        """The value is back across the threshold by the hysteresis margin."""
        v = abs(value) if self.abs_value else value
        shifted = self.threshold - self.hysteresis if self.op in (">", ">=") else self.threshold + self.hysteresis
        return not _compare(v, self.op, shifted)


def _compare(v: float, op: str, th: float) -> bool:
    if op == ">":
        return v > th
    if op == ">=":
        return v >= th
    if op == "<":
        return v < th
    return v <= th


def parse_expression(expression: str, symbol: bool = False) -> tuple[str, Operator, float, bool]:
    """`|z| >= 2.5` -> ("zscore", ">=", 2.5, True) (with `symbol`, the symbol metrics: ("price_z", ...)).
    ValueError with the reason on anything else."""
    m = _EXPR.match(expression)
    if m is None:
        raise ValueError(
            f"cannot parse alert expression {expression!r}: expected `metric OP number` or `|metric| OP number` "
            "with OP one of >, >=, <, <="
        )
    abs_value = m.group("abs") is not None
    metric = _resolve(m.group("am") if abs_value else m.group("m"), symbol)
    op: Operator = m.group("op")  # type: ignore[assignment]  # the regex admits only the four operators
    return metric, op, float(m.group("th")), abs_value


def _resolve(name: str, symbol: bool) -> str:
    """The metric `name` stands for in the rule's vocabulary; the error says when it is the other kind's."""
    try:
        return (resolve_symbol_metric if symbol else resolve_metric)(name)
    except ValueError as exc:
        other = resolve_metric if symbol else resolve_symbol_metric
        try:
            other(name)
        except ValueError:
            raise exc from None
        hint = "a pair metric: make it a pair rule" if symbol else "a symbol metric: give the rule a `symbol`"
        raise ValueError(f"{exc} ({name.strip()!r} is {hint})") from None


def check_webhook(url: str | None) -> str | None:
    """A webhook URL as stored (None or empty: no webhook); ValueError saying what is wrong with it."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    if len(url) > WEBHOOK_MAX_LEN:
        raise ValueError(f"webhook URL longer than {WEBHOOK_MAX_LEN} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url) or not url.isascii():
        raise ValueError("webhook URL has spaces, control or non-ASCII characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"webhook URL is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"webhook URL must start with http:// or https://, got {parts.scheme[:20]!r}")
    if not parts.hostname:
        raise ValueError("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("webhook URL must not carry a user or password (put a token in the path or query)")
    return url


def default_rule(z_entry: float = 2.0, z_exit: float = 0.5) -> AlertRule:
    """The rule a fresh install starts with: |z| >= z_entry on every pair, re-armed once |z| < z_exit."""
    return AlertRule.from_expression(
        DEFAULT_RULE_ID, f"|z| >= {z_entry!r}", pair="*", hysteresis=z_entry - z_exit, cooldown_ms=0,
        name=f"default: |z| >= {z_entry:g} on every pair, re-armed below {z_exit:g}",
    )


@dataclass(frozen=True, slots=True)
class FiredAlert:
    rule: AlertRule
    pair: str  # the pair, or for a symbol rule the symbol
    ts_ms: int
    value: float

    def stream_fields(self) -> dict[str, str]:
        """Fields of a `stream:alerts` entry (docs/contracts.md)."""
        return {
            "rule_id": self.rule.id,
            "rule": self.rule.to_json(),
            "metric": self.rule.metric,
            "value": repr(self.value),
            "threshold": repr(self.rule.threshold),
            # a symbol rule's alert names the symbol instead of a pair
            ("symbol" if self.rule.symbol is not None else "pair"): self.pair,
            "ts": str(self.ts_ms),
        }


@dataclass(slots=True)
class _RuleState:
    armed: bool = True
    last_fired_ms: int | None = None


class AlertEvaluator:
    """Evaluates a rule set against each pair's metrics, keeping armed/cool-down state per rule and pair."""

    def __init__(self, rules: list[AlertRule] | None = None) -> None:
        self._rules: dict[str, AlertRule] = {}
        self._state: dict[tuple[str, str], _RuleState] = {}  # (rule id, pair or symbol): a rule has one kind
        self._has_symbol = False
        self.set_rules(rules or [])

    @property
    def rules(self) -> list[AlertRule]:
        return list(self._rules.values())

    def set_rules(self, rules: list[AlertRule]) -> None:
        """Replace the rule set; state survives for rules whose definition did not change."""
        new = {r.id: r for r in rules}
        changed = {rid for rid, r in new.items() if self._rules.get(rid) != r} | (self._rules.keys() - new.keys())
        self._state = {k: v for k, v in self._state.items() if k[0] not in changed}
        self._rules = new
        self._has_symbol = any(r.symbol is not None and r.enabled for r in new.values())

    @property
    def has_symbol_rules(self) -> bool:
        return self._has_symbol

    def evaluate(self, pair: str, ts_ms: int, metrics: dict[str, float]) -> list[FiredAlert]:
        """The pair rules that fire on this observation of `pair`."""
        return self._evaluate(pair.upper(), ts_ms, metrics, False)

    def evaluate_symbol(self, symbol: str, ts_ms: int, metrics: dict[str, float]) -> list[FiredAlert]:
        """The symbol rules that fire on this update of `symbol`'s statistics."""
        return self._evaluate(symbol.upper(), ts_ms, metrics, True)

    def _evaluate(self, subject: str, ts_ms: int, metrics: dict[str, float], symbols: bool) -> list[FiredAlert]:
        fired: list[FiredAlert] = []
        pair_u = subject
        for rule in self._rules.values():
            if not rule.enabled or (rule.symbol is not None) != symbols:
                continue
            target = rule.symbol if symbols else rule.pair
            if target != "*" and target != subject:
                continue
            value = metrics.get(rule.metric)
            if value is None or value != value:
                continue  # metric not warm yet (or undefined): no decision either way
            st = self._state.get((rule.id, pair_u))
            if st is None:
                st = self._state[(rule.id, pair_u)] = _RuleState()
            if not st.armed:
                if rule.rearmed(value):
                    st.armed = True
                else:
                    continue
            if not rule.condition(value):
                continue
            if st.last_fired_ms is not None and ts_ms - st.last_fired_ms < rule.cooldown_ms:
                continue  # armed and true, but cooling down: fires once the cool-down ends if still true
            st.armed = False
            st.last_fired_ms = ts_ms
            fired.append(FiredAlert(rule, pair_u, ts_ms, value))
        return fired


def rules_to_json(rules: list[AlertRule]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in rules])


def rules_from_json(text: str | bytes) -> list[AlertRule]:
    return [AlertRule.model_validate(d) for d in json.loads(text)]
