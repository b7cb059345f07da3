"""The vectorised pair scanner against statsmodels and the single-pair functions, pair by pair."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import coint

from qs_analytics.meanrev import hurst
from qs_analytics.scanner import ScanFilter, filter_and_rank, scan_pairs
from qs_analytics.stationarity import half_life
from tests.unit.research_data import FIXTURES, btc_1m, eth_btc_1s

TOL = 1e-8


def market(seed, T, N):
    """N price series driven by 2 common random walks plus idiosyncratic noise: some pairs cointegrate."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(size=(T, 2)), axis=0)
    load = rng.normal(size=(2, N))
    walk = np.cumsum(rng.normal(size=(T, N)), axis=0) * rng.choice([0.0, 1.0], size=N)
    return np.exp(np.log(rng.uniform(1, 5_000, N)) + 0.003 * (common @ load) + 0.002 * walk
                  + 0.002 * rng.normal(size=(T, N)))  # fmt: skip


def check_row(table, k, closes, symbols, coint_kw):
    a, b = symbols.index(table["sym_a"][k]), symbols.index(table["sym_b"][k])
    ca, cb = closes[:, a], closes[:, b]
    ab, ba = coint(ca, cb, trend="c", **coint_kw), coint(cb, ca, trend="c", **coint_kw)
    assert table["stat_y_on_x"][k] == pytest.approx(ab[0], rel=TOL, abs=TOL)
    assert table["stat_x_on_y"][k] == pytest.approx(ba[0], rel=TOL, abs=TOL)
    assert table["p_y_on_x"][k] == pytest.approx(ab[1], rel=TOL, abs=1e-12)
    assert table["p_x_on_y"][k] == pytest.approx(ba[1], rel=TOL, abs=1e-12)
    flip = ba[1] < ab[1]
    y, x = (cb, ca) if flip else (ca, cb)
    assert (table["y"][k], table["x"][k]) == ((symbols[b], symbols[a]) if flip else (symbols[a], symbols[b]))
    assert table["p_value"][k] == min(table["p_y_on_x"][k], table["p_x_on_y"][k])
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    assert table["beta"][k] == pytest.approx(fit.params[1], rel=1e-9)
    assert table["alpha"][k] == pytest.approx(fit.params[0], rel=1e-9, abs=1e-9 * abs(fit.params[1] * x.mean()))
    s = y - table["beta"][k] * x - table["alpha"][k]
    hl = half_life(s).half_life
    got_hl = table["half_life"][k]
    assert got_hl == pytest.approx(hl, rel=1e-9, nan_ok=True) or (math.isinf(hl) and got_hl == hl)
    assert table["hurst"][k] == pytest.approx(hurst(s), rel=1e-9, abs=1e-12)
    assert table["spread_sigma"][k] == pytest.approx(np.std(s, ddof=1), rel=1e-9)
    assert table["z"][k] == pytest.approx(s[-1] / np.std(s, ddof=1), rel=1e-6, abs=1e-9)
    ra, rb = np.diff(np.log(ca)), np.diff(np.log(cb))
    assert table["corr"][k] == pytest.approx(np.corrcoef(ra, rb)[0, 1], rel=1e-12)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(60, 600), N=st.integers(2, 7))
def test_every_pair_equals_coint_with_its_default_lag_choice(seed, T, N):
    closes = market(seed, T, N)
    symbols = [f"S{i}USDT" for i in range(N)]
    table = scan_pairs(closes, symbols, chunk=4)  # small chunks: the chunk seams are crossed too
    assert len(table["p_value"]) == N * (N - 1) // 2
    for k in range(len(table["p_value"])):
        check_row(table, k, closes, symbols, {})


def test_fixed_lag_equals_coint_without_autolag():
    closes = market(7, 400, 5)
    symbols = list("ABCDE")
    table = scan_pairs(closes, symbols, max_lag=4, autolag=None)
    assert set(table["lags"].tolist()) == {4}
    for k in range(10):
        check_row(table, k, closes, symbols, {"maxlag": 4, "autolag": None})


def test_real_data_pairs():
    o = np.loadtxt(FIXTURES / "BTCUSDT-1m-2024-08-08.csv", delimiter=",", usecols=(1, 2, 3, 4))
    _, c, qv = btc_1m()
    # a real market of 5 series: OHLC of BTCUSDT and its close one hour earlier (60 rows lagged)
    closes = np.column_stack([o[60:], c[:-60]])
    symbols = ["OPEN", "HIGH", "LOW", "CLOSE", "CLOSE_1H_AGO"]
    table = scan_pairs(closes, symbols, liquidity=np.full(5, np.median(qv)))
    for k in range(10):
        check_row(table, k, closes, symbols, {})
    _, x, y = eth_btc_1s()
    t2 = scan_pairs(np.column_stack([x, y]), ["BTCUSDT", "ETHUSDT"])
    check_row(t2, 0, np.column_stack([x, y]), ["BTCUSDT", "ETHUSDT"], {})


def test_filters_and_ranking():
    closes = market(3, 500, 8)
    symbols = [f"S{i}" for i in range(8)]
    liq = np.array([1e3, 1e4, 1e5, 1e6, 1e3, 1e4, 1e5, 1e6])
    spr = np.array([1.0, 2.0, np.nan, 4.0, 1.0, 9.0, 1.0, 1.0])
    table = scan_pairs(closes, symbols, liquidity=liq, spread_bps=spr)
    ia, ib = np.triu_indices(8, 1)
    assert table["liquidity"].tolist() == np.minimum(liq[ia], liq[ib]).tolist()
    f = ScanFilter(max_p_value=0.5, min_half_life=1.0, max_half_life=200.0, min_liquidity=1e4, max_spread_bps=3.0)
    idx = filter_and_rank(table, f)
    plain = [k for k in range(28)
             if table["p_value"][k] <= 0.5 and 1.0 <= table["half_life"][k] <= 200.0 and table["liquidity"][k] >= 1e4
             and (np.isnan(table["spread_bps"][k]) or table["spread_bps"][k] <= 3.0)]  # fmt: skip
    assert sorted(idx.tolist()) == sorted(plain) and len(plain) > 0
    keys = [(table["p_value"][k], table["half_life"][k]) for k in idx]
    assert keys == sorted(keys)
    assert filter_and_rank(table, ScanFilter(max_p_value=1.0)).size == 28


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="symbols"):
        scan_pairs(np.ones((100, 3)), ["A", "B"])
    bad = market(1, 100, 3)
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        scan_pairs(bad, ["A", "B", "C"])
    with pytest.raises(ValueError, match="50 rows"):
        scan_pairs(market(1, 40, 3), ["A", "B", "C"])
