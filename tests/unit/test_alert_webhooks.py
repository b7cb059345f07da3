"""Alert rules on each metric kind (against a plain loop), webhook URLs, the default rule and its seed, the webhook
body and the retry backoff."""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import asdict

import numpy as np
import pytest
from pydantic import ValidationError

from qs_analytics.alerts import AlertEvaluator, AlertRule, check_webhook, default_rule
from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.symbol import SymbolStats, book_metrics
from qs_common import keys
from worker.alert_seed import seed_default_rule
from worker.webhooks import alert_request, backoff_s


def plain_fires(values: list[float], op: str, th: float, hyst: float, absolute: bool) -> list[int]:
    """The indices where the rule fires, written out plainly: armed -> fire -> re-arm past th ∓ hyst."""
    out, armed = [], True
    for i, v in enumerate(values):
        if v != v:
            continue
        v = abs(v) if absolute else v
        if not armed:
            back = {">=": v < th - hyst, ">": v <= th - hyst, "<=": v > th + hyst, "<": v >= th + hyst}[op]
            if not back:
                continue
            armed = True
        if {">=": v >= th, ">": v > th, "<=": v <= th, "<": v < th}[op]:
            out.append(i)
            armed = False
    return out


@functools.cache
def symbol_series() -> list[dict[str, float]]:
    """Per-trade symbol statistics and top-of-book metrics of a random walk (the worker's own computations)."""
    rng = random.Random(3)
    stats, p, out = SymbolStats(50), 100.0, []
    for i in range(600):
        p *= math.exp(rng.gauss(0, 1e-3))
        snap = asdict(stats.update(1_000 * i, p, 0.5))
        spread = p * rng.uniform(1e-5, 5e-4)
        bm = asdict(book_metrics(p - spread / 2, rng.uniform(0.1, 5), p + spread / 2, rng.uniform(0.1, 5)))
        # top of book as the book role names it (book:metrics: imbalance over 1 level = book_imbalance_1)
        out.append({**snap, "book_spread_bps": bm["spread_bps"], "book_imbalance_1": bm["imbalance"]})
    return out


@functools.cache
def pair_series() -> list[dict[str, float]]:
    rng = random.Random(5)
    eng = PairEngine(PairConfig(window=60, adf_every_ms=15_000, huber_every_n=1_000))
    x, s, out = 100.0, 0.0, []
    for i in range(400):
        x *= math.exp(rng.gauss(0, 1e-3))
        s = 0.8 * s + rng.gauss(0, 1e-3)
        m = eng.update(1_000 * i, 2.0 * x * math.exp(s), x)
        if eng.adf_due(1_000 * i):
            eng.run_adf(1_000 * i)
        res = eng.last_adf
        if res is not None and res.ran:
            m = {**m, "adf_pvalue": res.p_value}
        out.append(m)
    return out


SYMBOL_RULES = [  # (expression, hysteresis): every symbol metric kind the issue names
    ("price > {q80}", 0.05), ("momentum > {q80}", 1.0), ("|z| >= {q80}", 0.5), ("vol > {q80}", 0.0),
    ("vol_annualised > {q80}", 0.01), ("spread_bps >= {q80}", 0.5), ("imbalance < {q20}", 0.1),
]  # fmt: skip
PAIR_RULES = [("|z| >= {q80}", 0.5), ("adf_p < {q20}", 0.02), ("spread > {q80}", 0.0), ("corr < {q20}", 0.01)]


def _check(rule: AlertRule, series: list[dict[str, float]], symbol: bool) -> int:
    values = [float(m.get(rule.metric, math.nan)) for m in series]
    ev = AlertEvaluator([rule])
    evaluate = ev.evaluate_symbol if symbol else ev.evaluate
    got = [i for i, m in enumerate(series) for _ in evaluate("BTCUSDT" if symbol else "A/B", i, m)]
    want = plain_fires(values, rule.op, rule.threshold, rule.hysteresis, rule.abs_value)
    assert got == want, rule.expression
    return len(got)


def _rule(expr: str, hyst: float, series: list[dict[str, float]], symbol: bool) -> AlertRule:
    probe = AlertRule.from_expression("p", expr.format(q80=1, q20=1), **({"symbol": "*"} if symbol else {}))
    vals = np.array([m.get(probe.metric, np.nan) for m in series], dtype=float)
    vals = np.abs(vals) if probe.abs_value else vals
    q80, q20 = float(np.nanquantile(vals, 0.8)), float(np.nanquantile(vals, 0.2))
    where = {"symbol": "BTCUSDT"} if symbol else {"pair": "A/B"}
    return AlertRule.from_expression("r", expr.format(q80=repr(q80), q20=repr(q20)), hysteresis=hyst, **where)


@pytest.mark.parametrize(("expr", "hyst"), SYMBOL_RULES)
def test_symbol_rules_fire_as_a_plain_loop_says(expr, hyst):
    series = symbol_series()
    assert _check(_rule(expr, hyst, series, True), series, True) >= 1


@pytest.mark.parametrize(("expr", "hyst"), PAIR_RULES)
def test_pair_rules_fire_as_a_plain_loop_says(expr, hyst):
    series = pair_series()
    assert _check(_rule(expr, hyst, series, False), series, False) >= 1


def test_eg_pvalue_rule_and_the_aliases_resolve():
    assert AlertRule.from_expression("e", "eg_p < 0.05").metric == "eg_pvalue"
    assert AlertRule.from_expression("s", "spread_bps > 5", symbol="*").metric == "book_spread_bps"
    assert AlertRule.from_expression("i", "imbalance < -0.5", symbol="*").metric == "book_imbalance_1"
    assert AlertRule.from_expression("v", "vol_ann > 1", symbol="*").metric == "vol_annualised"


def test_an_unknown_metric_is_a_clear_error_naming_the_other_kind():
    with pytest.raises(ValueError, match="unknown metric 'price'.*is a symbol metric"):
        AlertRule.from_expression("x", "price > 1")
    with pytest.raises(ValueError, match="unknown symbol metric 'adf_p'.*is a pair metric"):
        AlertRule.from_expression("x", "adf_p < 0.05", symbol="BTCUSDT")
    with pytest.raises(ValueError, match="unknown metric 'bogus'") as exc:
        AlertRule.from_expression("x", "bogus > 1")
    assert "is a" not in str(exc.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://", "no host"),
        ("https://user:pw@example.com/", "user or password"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/\n", None),  # trailing white space is trimmed
        ("https://example.com/é", "non-ASCII"),
        ("https://example.com:99999/", "not a URL"),
        ("https://example.com/" + "a" * 2_100, "longer than 2048"),
    ],
)
def test_webhook_urls_are_checked(url, problem):
    if problem is None:
        assert check_webhook(url) == url.strip()
        return
    with pytest.raises(ValueError, match=problem):
        check_webhook(url)
    with pytest.raises(ValidationError):
        AlertRule.from_expression("w", "z > 2", webhook=url)


def test_a_rule_with_a_webhook_round_trips_and_an_empty_one_is_none():
    rule = AlertRule.from_expression("w", "z > 2", webhook="https://hooks.example.com/services/T/B/x?y=1")
    assert AlertRule.from_json(rule.to_json()) == rule
    assert AlertRule.from_expression("w", "z > 2", webhook="  ").webhook is None


def test_the_default_rule_fires_at_two_and_rearms_below_half():
    rule = default_rule()
    assert (rule.id, rule.pair, rule.metric, rule.abs_value, rule.op, rule.threshold) == (
        "default-z", "*", "zscore", True, ">=", 2.0)  # fmt: skip
    ev = AlertEvaluator([rule])
    zs = [0.0, 2.0, 0.6, -2.5, 0.49, -2.0, 1.0, 3.0]
    fired = [i for i, z in enumerate(zs) for _ in ev.evaluate("SOLUSDT/BTCUSDT", i, {"zscore": z})]
    assert fired == [1, 5] == plain_fires(zs, ">=", 2.0, 1.5, True)
    custom = default_rule(2.5, 0.25)
    assert custom.threshold == 2.5 and custom.hysteresis == 2.25


def test_the_default_rule_is_seeded_once_and_stays_deleted(r):
    assert seed_default_rule(r) is True
    assert AlertRule.from_json(r.hget(keys.ALERT_RULES, "default-z")) == default_rule()
    r.hdel(keys.ALERT_RULES, "default-z")  # the user deletes it
    assert seed_default_rule(r) is False and r.hlen(keys.ALERT_RULES) == 0
    r.flushdb()
    r.hset(keys.ALERT_RULES, "mine", AlertRule.from_expression("mine", "z > 3").to_json())
    assert seed_default_rule(r) is False and r.hkeys(keys.ALERT_RULES) == [b"mine"]  # an install with rules


def test_the_webhook_body_names_everything_and_keeps_user_text_inert():
    rule = AlertRule.from_expression("h", "|z| >= 2", webhook="http://127.0.0.1:9/x", name="<!channel> & co")
    fired = AlertEvaluator([rule]).evaluate("ethusdt/btcusdt", 1_723_161_600_123, {"zscore": -2.25})
    fields = fired[0].stream_fields()
    url, raw = alert_request("1723161600200-0", fields)  # type: ignore[misc]
    body = json.loads(raw)
    assert url == "http://127.0.0.1:9/x"
    assert body == {
        "id": "1723161600200-0", "rule_id": "h", "rule_name": "<!channel> & co", "expression": "|zscore| >= 2",
        "kind": "pair", "pair": "ETHUSDT/BTCUSDT", "metric": "zscore", "value": -2.25, "op": ">=",
        "abs_value": True, "threshold": 2.0, "ts": 1_723_161_600_123,
        "text": "Alert &lt;!channel&gt; &amp; co: ETHUSDT/BTCUSDT |zscore| &gt;= 2 (zscore = -2.25)",
    }  # fmt: skip
    sym = AlertRule.from_expression("s", "price > 1", symbol="BTCUSDT", webhook="https://e.example/h")
    body = json.loads(alert_request("1-0", AlertEvaluator([sym]).evaluate_symbol("BTCUSDT", 5, {"price": 2.0})[0]
                                    .stream_fields())[1])  # type: ignore[index]  # fmt: skip
    assert (body["kind"], body["symbol"], "pair" in body) == ("symbol", "BTCUSDT", False)
    assert alert_request("1-0", AlertEvaluator([default_rule()]).evaluate("A/B", 1, {"zscore": 3.0})[0]
                         .stream_fields()) is None  # fmt: skip  # no webhook: nothing to post
    with pytest.raises(ValueError):
        alert_request("1-0", {"rule": "{not json", "value": "1", "ts": "1"})


def test_backoff_doubles_with_jitter_and_a_cap():
    rng = random.Random(1)
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)):
        waits = [backoff_s(attempt, 0.5, 8.0, rng) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 4  # jittered, not in step
