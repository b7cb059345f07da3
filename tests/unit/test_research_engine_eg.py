"""The live analytics' Engle–Granger fields: computed with the scheduled ADF, on the same window, equal to
statsmodels' `coint` in both directions."""

from __future__ import annotations

import pytest
from statsmodels.tsa.stattools import coint

from qs_analytics.alerts import AlertRule
from qs_analytics.engine import PairConfig, PairEngine
from tests.unit.research_data import eth_btc_1s


def _feed(engine: PairEngine, ts, x, y) -> dict[str, float]:
    m: dict[str, float] = {}
    for t, xi, yi in zip(ts, x, y, strict=True):
        m = engine.update(int(t), float(yi), float(xi))
    return m


@pytest.mark.parametrize("window", [60, 120])
def test_eg_fields_equal_statsmodels_coint_on_the_window(window):
    ts, x, y = eth_btc_1s()
    e = PairEngine(PairConfig(window=window))
    _feed(e, ts, x, y)
    e.run_adf(int(ts[-1]))
    m = e.update(int(ts[-1]) + 1, float(y[-1]), float(x[-1]))  # the ADF's figures join the next update
    yw, xw = y[-window:], x[-window:]
    p_yx = coint(yw, xw, trend="c")[1]
    s_xy, p_xy = coint(xw, yw, trend="c")[:2]
    assert m["eg_pvalue_y_on_x"] == pytest.approx(p_yx, rel=1e-6)
    assert m["eg_pvalue_x_on_y"] == pytest.approx(p_xy, rel=1e-6)
    assert m["eg_pvalue"] == pytest.approx(min(p_yx, p_xy), rel=1e-6)
    assert m["eg_direction"] == (1.0 if p_yx <= p_xy else -1.0)
    if m["eg_direction"] == -1.0:
        assert m["eg_stat"] == pytest.approx(s_xy, rel=1e-6)
    assert "adf_pvalue" in m  # plain ADF stays beside it


def test_eg_fields_wait_for_enough_points_and_alert_rules_know_them():
    ts, x, y = eth_btc_1s()
    e = PairEngine(PairConfig(window=100))
    _feed(e, ts[:130], x[:130], y[:130])  # 31 spreads: enough for ADF (20), not for Engle–Granger (50)
    e.run_adf(int(ts[129]))
    m = e.update(int(ts[130]), float(y[130]), float(x[130]))
    assert "adf_pvalue" in m and not any(k.startswith("eg_") for k in m)
    assert AlertRule.from_expression("r1", "eg_p < 0.05").metric == "eg_pvalue"
