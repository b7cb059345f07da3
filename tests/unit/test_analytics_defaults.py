"""One set of engine defaults: the live worker's Settings, PairConfig, KalmanHedge and the batch command agree.

Before issue 13 PairConfig and the batch command used δ 1e-4, R 1e-3 (a state so loose at BTC prices that it
fits every y), Huber every 100 / 5 s and Theil–Sen on, while the live worker used δ 1e-9, R 1, 1000 / 2 s, off.
"""

from __future__ import annotations

import csv

import numpy as np

from qs_analytics import defaults
from qs_analytics.engine import PairConfig
from qs_analytics.kalman import KalmanHedge, kalman_filter_batch
from qs_common.settings import Settings
from worker.analytics import batch
from worker.analytics_consumer import pair_config


def test_the_live_engine_config_is_the_default_config():
    live = Settings.model_construct()  # the declared defaults, whatever the environment of the test run says
    assert pair_config(live) == PairConfig()
    assert (live.kalman_delta, live.kalman_obs_noise, live.kalman_init_cov) == (1e-9, 1.0, 1.0)
    assert (live.huber_every_n, live.huber_every_ms, live.theilsen) == (1_000, 2_000, False)


def test_kalman_defaults_are_the_live_ones():
    k = KalmanHedge()
    assert (k.delta, k.obs_noise, k.init_cov) == (Settings.model_construct().kalman_delta, 1.0, 1.0)
    assert (k.delta, k.obs_noise, k.init_cov) == (defaults.KALMAN_DELTA, defaults.KALMAN_OBS_NOISE, 1.0)


def test_batch_command_without_kalman_flags_computes_the_live_filter(tmp_path):
    rng = np.random.default_rng(5)
    x = 60_000 + np.cumsum(rng.normal(0, 5, 40))
    y = 0.05 * x + 3 + rng.normal(0, 0.2, 40)
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("time", "x", "y"))
        for i in range(len(x)):
            w.writerow((1_723_161_255_000 + 1_000 * i, repr(float(x[i])), repr(float(y[i]))))
    assert batch.main(["--input", str(src), "--window", "5", "--output", str(dst)]) == 0
    with dst.open(newline="") as f:
        rows = list(csv.DictReader(f))
    live = Settings.model_construct()
    want = kalman_filter_batch(x, y, live.kalman_delta, live.kalman_obs_noise, live.kalman_init_cov)
    got = np.array([float(r["kalman_beta"]) for r in rows])
    np.testing.assert_allclose(got, want["beta"], rtol=1e-9)
    old = kalman_filter_batch(x, y, 1e-4, 1e-3, 1.0)  # the former batch default: visibly another filter
    assert np.max(np.abs(got - old["beta"])) > 1e-6
