"""Alert rules: parsing (never eval), hysteresis, cool-down, per-pair state, JSON round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qs_analytics.alerts import AlertEvaluator, AlertRule, parse_expression, rules_from_json, rules_to_json
from qs_analytics.names import METRIC_NAMES

PAIR = "ETHUSDT/BTCUSDT"


@pytest.mark.parametrize(
    ("expr", "parsed"),
    [
        ("z > 2", ("zscore", ">", 2.0, False)),
        ("|z| >= 2.5", ("zscore", ">=", 2.5, True)),
        ("| zscore |>=2.5", ("zscore", ">=", 2.5, True)),
        ("adf_p < 0.05", ("adf_pvalue", "<", 0.05, False)),
        ("beta <= -1e-3", ("ols_beta", "<=", -0.001, False)),
        ("corr < .5", ("corr", "<", 0.5, False)),
        ("half_life > 100", ("half_life", ">", 100.0, False)),
    ],
)
def test_parse(expr, parsed):
    assert parse_expression(expr) == parsed


@pytest.mark.parametrize(
    "expr", ["z >> 2", "z = 2", "z > two", "|z > 2", "__import__('os').system('x') > 1", "z > 2 or True", ""]
)
def test_parse_rejects_anything_else(expr):
    with pytest.raises(ValueError, match="cannot parse|unknown metric"):
        parse_expression(expr)


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown metric 'zz'"):
        parse_expression("zz > 1")
    with pytest.raises(ValidationError):
        AlertRule(id="r", metric="nope", op=">", threshold=1.0)


def run(ev: AlertEvaluator, values: list[float], step_ms: int = 1_000, pair: str = PAIR) -> list[int]:
    fired = []
    for i, v in enumerate(values):
        fired += [a.ts_ms for a in ev.evaluate(pair, i * step_ms, {"zscore": v})]
    return fired


def test_hysteresis_rearms_only_after_crossing_back_by_the_margin():
    ev = AlertEvaluator([AlertRule.from_expression("r", "z > 2", hysteresis=0.5)])
    # fires at 2.1; 1.8 is not back by 0.5, so 2.2 does not fire; 1.4 re-arms; 2.3 fires
    assert run(ev, [1.0, 2.1, 1.8, 2.2, 1.4, 2.3]) == [1_000, 5_000]


def test_abs_rule_fires_on_both_sides():
    ev = AlertEvaluator([AlertRule.from_expression("r", "|z| >= 2.5")])
    assert run(ev, [0.0, -2.6, -2.7, 0.0, 2.5]) == [1_000, 4_000]


def test_cooldown_is_observation_time():
    ev = AlertEvaluator([AlertRule.from_expression("r", "z > 2", cooldown_ms=3_000)])
    # re-armed at t=2000 and true at 2000 and 3000: cooling down until t=3000, so it fires at 3000
    assert run(ev, [2.5, 2.5, 0.0, 2.5, 2.5, 2.5, 0.0, 2.5]) == [0, 3_000, 7_000]
    # re-armed and true inside the cool-down only: never fires
    ev = AlertEvaluator([AlertRule.from_expression("r", "z > 2", cooldown_ms=10_000)])
    assert run(ev, [2.5, 0.0, 2.5, 0.0, 2.5]) == [0]


def test_state_is_per_pair_and_rules_filter_pairs():
    ev = AlertEvaluator(
        [AlertRule.from_expression("a", "z > 2"), AlertRule.from_expression("b", "z > 2", pair="solusdt/btcusdt")]
    )
    assert [a.rule.id for a in ev.evaluate(PAIR, 0, {"zscore": 3.0})] == ["a"]
    assert sorted(a.rule.id for a in ev.evaluate("SOLUSDT/BTCUSDT", 0, {"zscore": 3.0})) == ["a", "b"]
    assert ev.evaluate(PAIR, 1, {"zscore": 3.0}) == []


def test_missing_metric_and_disabled_rules_do_nothing():
    ev = AlertEvaluator(
        [AlertRule.from_expression("r", "z > 2"), AlertRule.from_expression("d", "z > 0", enabled=False)]
    )
    assert ev.evaluate(PAIR, 0, {"ols_beta": 1.0}) == []
    fired = ev.evaluate(PAIR, 1, {"zscore": 2.5})
    assert [f.rule.id for f in fired] == ["r"]
    fields = fired[0].stream_fields()
    assert fields["metric"] == "zscore" and fields["value"] == "2.5" and fields["ts"] == "1"
    assert AlertRule.from_json(fields["rule"]) == fired[0].rule


rules = st.builds(
    AlertRule,
    id=st.text(min_size=1, max_size=20),
    metric=st.sampled_from(METRIC_NAMES),
    op=st.sampled_from([">", ">=", "<", "<="]),
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    abs_value=st.booleans(),
    pair=st.sampled_from(["*", PAIR]),
    hysteresis=st.floats(0, 10),
    cooldown_ms=st.integers(0, 10**9),
    enabled=st.booleans(),
    name=st.text(max_size=30),
)


@settings(max_examples=50, deadline=None)
@given(rule=rules)
def test_json_round_trip(rule):
    assert AlertRule.from_json(rule.to_json()) == rule
    assert rules_from_json(rules_to_json([rule, rule])) == [rule, rule]
    metric, op, threshold, abs_value = parse_expression(
        rule.expression.replace(f"{rule.threshold:g}", repr(rule.threshold))
    )
    assert (metric, op, threshold, abs_value) == (rule.metric, rule.op, rule.threshold, rule.abs_value)


def test_a_symbol_rule_watches_symbol_stats_with_hysteresis_and_cooldown():
    rule = AlertRule.from_expression("g", "garch_sigma_next_ann > 80", symbol="btcusdt", hysteresis=10,
                                     cooldown_ms=5_000)  # fmt: skip
    assert (rule.symbol, rule.metric) == ("BTCUSDT", "garch_sigma_next_ann")
    pair_rule = AlertRule.from_expression("z", "|z| >= 2")
    ev = AlertEvaluator([rule, pair_rule])
    assert ev.has_symbol_rules
    got = []
    # fires at 85; 75 is not back by 10; 65 re-arms; 90 at 4 s is inside the cool-down, fires at 6 s
    for i, v in enumerate([70.0, 85.0, 75.0, 82.0, 65.0, 90.0, 91.0]):
        got += [(a.ts_ms, a.pair) for a in ev.evaluate_symbol("BTCUSDT", i * 1_000, {"garch_sigma_next_ann": v})]
        assert ev.evaluate_symbol("ETHUSDT", i * 1_000, {"garch_sigma_next_ann": v}) == []  # another symbol
    assert got == [(1_000, "BTCUSDT"), (6_000, "BTCUSDT")]
    # the pair rule is not evaluated on symbol stats, nor the symbol rule on pair metrics
    assert ev.evaluate_symbol("BTCUSDT", 99_000, {"zscore": 5.0, "garch_sigma_next_ann": 0.0}) == []
    assert [a.rule.id for a in ev.evaluate(PAIR, 99_000, {"zscore": 5.0, "garch_sigma_next_ann": 500.0})] == ["z"]


def test_a_symbol_alert_names_the_symbol_and_a_star_rule_keeps_state_per_symbol():
    ev = AlertEvaluator([AlertRule.from_expression("m", "|momentum| > 50", symbol="*")])
    a = ev.evaluate_symbol("ETHUSDT", 1, {"momentum_bps_per_min": -60.0})
    b = ev.evaluate_symbol("BTCUSDT", 2, {"momentum_bps_per_min": 70.0})  # its own state: fires too
    assert ev.evaluate_symbol("ETHUSDT", 3, {"momentum_bps_per_min": -80.0}) == []  # disarmed
    fields = a[0].stream_fields()
    assert fields["symbol"] == "ETHUSDT" and "pair" not in fields and fields["metric"] == "momentum_bps_per_min"
    assert b[0].stream_fields()["symbol"] == "BTCUSDT"
    assert "pair" in AlertEvaluator([AlertRule.from_expression("z", "z > 1")]).evaluate(PAIR, 1, {"zscore": 2.0})[
        0].stream_fields()  # fmt: skip


def test_symbol_rule_json_round_trip_and_backward_compatibility():
    rule = AlertRule.from_expression("p", "price_z <= -3", symbol="SOLUSDT", cooldown_ms=1)
    assert AlertRule.from_json(rule.to_json()) == rule
    assert rules_from_json(rules_to_json([rule])) == [rule]
    old = AlertRule.from_json('{"id":"o","metric":"z","op":">","threshold":2,"pair":"ETHUSDT/BTCUSDT"}')
    assert old.symbol is None and old.metric == "zscore"  # a stored pair rule reads as before
    with pytest.raises(ValueError, match="unknown symbol metric 'zscore'"):
        AlertRule.from_expression("bad", "zscore > 1", symbol="BTCUSDT")  # a pair metric on a symbol
    with pytest.raises(ValueError, match="unknown metric 'price'"):
        AlertRule.from_expression("bad", "price > 1")  # a symbol metric on a pair rule
    with pytest.raises(ValidationError, match="symbol must be"):
        AlertRule.from_expression("bad", "price > 1", symbol="BTC/USDT")
