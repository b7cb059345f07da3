"""The engine on real recorded Binance trades (ETH/BTC, 2024-08-08) against the reference libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from qs_analytics.align import PairAligner
from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.kalman import kalman_filter_batch
from tests.recordings import trade_frames

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def trades(name: str) -> list[tuple[int, int, str, float]]:
    """(trade time ms, receive ns, symbol, price) of every `@trade` frame; depth, book and snapshot skipped."""
    return [(int(d["T"]), recv, d["s"], float(d["p"])) for recv, d in trade_frames(FIXTURES / name)]


@pytest.fixture(scope="module")
def aligned() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ticks = sorted(trades("ethusdt_20240808.gz") + trades("btcusdt_20240808.gz"))
    al = PairAligner("ETHUSDT", "BTCUSDT")
    obs = [o for t, _, sym, p in ticks if (o := al.update(sym, t, p)) is not None]
    ts, y, x = (np.array(c) for c in zip(*obs, strict=True))
    return ts, y, x


def test_aligned_series_is_as_of(aligned):
    ts, y, x = aligned
    assert len(ts) > 10_000 and np.all(np.diff(ts) >= 0)
    assert x.min() > 55_000 and x.max() < 65_000 and y.min() > 2_400 and y.max() < 2_800
    # each observation moves at most one leg
    assert np.all((np.diff(x) == 0) | (np.diff(y) == 0))


def test_engine_ols_and_kalman_match_references_on_real_data(aligned):
    ts, y, x = aligned
    window = 500
    cfg = PairConfig(window=window, delta=1e-9, obs_noise=0.25, init_cov=1.0, theilsen=False, huber_every_n=2_000)
    eng = PairEngine(cfg)
    kal = kalman_filter_batch(x, y, cfg.delta, cfg.obs_noise, cfg.init_cov)
    checked = 0
    for t in range(len(ts)):
        m = eng.update(int(ts[t]), float(y[t]), float(x[t]))
        assert m["kalman_beta"] == pytest.approx(kal["beta"][t], rel=1e-9, abs=1e-12)
        assert abs(m["kalman_alpha"] - kal["alpha"][t]) <= 1e-9 * (abs(kal["alpha"][t]) + abs(kal["beta"][t] * x[t]))
        if t >= window - 1 and t % 97 == 0:
            xs, ys = x[t - window + 1 : t + 1], y[t - window + 1 : t + 1]
            if xs.max() == xs.min():
                assert "ols_beta" not in m
                continue
            r = sm.OLS(ys - ys.mean(), sm.add_constant(xs - xs.mean())).fit()  # centred: well conditioned
            assert m["ols_beta"] == pytest.approx(r.params[1], rel=1e-9, abs=1e-10)
            alpha_ref = ys.mean() + r.params[0] - r.params[1] * xs.mean()
            assert abs(m["ols_alpha"] - alpha_ref) <= 1e-9 * (abs(alpha_ref) + abs(r.params[1] * xs.mean()))
            if ys.max() == ys.min():
                assert "ols_r2" not in m  # y did not trade in the window: R² undefined
            else:
                assert m["ols_r2"] == pytest.approx(r.rsquared, rel=1e-9, abs=1e-9)
            checked += 1
    assert checked > 50
