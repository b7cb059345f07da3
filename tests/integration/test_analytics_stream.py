"""The analytics stream end to end with a real Redis: metrics, throttle, alerts with hysteresis, ADF."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from qs_analytics.alerts import AlertRule
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.integration.procs import WorkerProc, drained, run_replay, status, wait_for

pytestmark = pytest.mark.integration


def test_analytics_and_alerts_from_the_recordings(tmp_path, redis_server):
    r = redis_server.client()
    z_rule = AlertRule.from_expression("z-hi", "|z| >= 2", hysteresis=0.5, cooldown_ms=10_000)
    never = AlertRule.from_expression("never", "zscore > 1000")
    r.hset("alerts:rules", mapping={"z-hi": z_rule.to_json(), "never": never.to_json(), "broken": "{not json"})
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log", ADF_EVERY_S="30")
    try:
        worker.wait_healthy()
        run_replay(redis_server.url, [BTC_RECORDING, ETH_RECORDING], tmp_path / "ingest.log")
        wait_for(lambda: drained(r), 120, "worker to drain")
        wait_for(lambda: status(r, "worker-analytics").get("observations", 0) > 0, 10, "analytics status")
    finally:
        assert worker.stop() == 0
    entries = [f for _, f in r.xrange("stream:analytics")]
    assert entries, worker.log()
    last = {k.decode(): v.decode() for k, v in entries[-1].items()}
    assert last["v"] == "1" and last["pair"] == "ETHUSDT/BTCUSDT"
    for metric in ("recv_ns", "ols_beta", "ols_alpha", "ols_r2", "kalman_beta", "kalman_alpha", "huber_beta", "spread",
                   "zscore", "corr", "half_life", "adf_pvalue", "n"):
        assert metric in last, metric
    observations = status(r, "worker-analytics")["observations"]
    assert observations - 50 < float(last["n"]) <= observations  # the newest may wait out the throttle
    assert "adf_verdict" in last

    # throttle: at most 10 entries per second of observation time, except entries forced by an alert
    alerts = r.xrange("stream:alerts")
    fired_ts = {int(f[b"ts"]) for _, f in alerts}
    per_second = Counter(int(f[b"ts"]) // 1000 for f in entries if int(f[b"ts"]) not in fired_ts)
    assert max(per_second.values()) <= 10

    # alerts: only the live rule fires, each firing is published with its value, cool-down respected
    assert alerts, "|z| >= 2 never fired on the recordings"
    assert {f[b"rule_id"] for _, f in alerts} == {b"z-hi"}
    times = [int(f[b"ts"]) for _, f in alerts]
    assert all(b - a >= 10_000 for a, b in zip(times, times[1:], strict=False))
    for _, f in alerts:
        assert abs(float(f[b"value"])) >= 2 and json.loads(f[b"rule"])["metric"] == "zscore"
        assert int(f[b"ts"]) in {int(e[b"ts"]) for e in entries}  # the crossing itself is published
    st = status(r, "worker-analytics")
    assert st["alerts_fired"] == len(alerts) and st["bad_rules"] == 1 and st["errors"] == 0
    assert r.get("book:latest:BTCUSDT") and json.loads(r.get("symbol:stats:ETHUSDT"))["vwap"] > 0
