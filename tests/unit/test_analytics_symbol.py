"""Per-symbol statistics and top-of-book metrics against numpy."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qs_analytics.symbol import MS_PER_YEAR, SymbolStats, book_metrics


@settings(max_examples=30, deadline=None)
@given(
    window=st.integers(2, 150),
    extra=st.integers(0, 150),
    level=st.sampled_from([0.5, 2_600.0, 60_000.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_symbol_stats_match_numpy(window, extra, level, seed):
    rng = np.random.default_rng(seed)
    n = window + extra
    ts = 1_723_161_255_000 + np.cumsum(rng.integers(1, 2_000, n))
    p = level * np.exp(np.cumsum(1e-4 * rng.standard_normal(n)))
    q = rng.uniform(0.001, 3.0, n)
    stats = SymbolStats(window)
    for t in range(n):
        snap = stats.update(int(ts[t]), float(p[t]), float(q[t]))
        lo = max(0, t - window + 1)
        pw, tw, qw = p[lo : t + 1], ts[lo : t + 1], q[lo : t + 1]
        assert snap.n == len(pw)
        assert snap.vwap == pytest.approx(np.sum(pw * qw) / np.sum(qw), rel=1e-12)
        if len(pw) >= 2:
            slope = np.polyfit((tw - tw[0]) / 60_000.0, np.log(pw), 1)[0]
            assert snap.momentum_bps_per_min == pytest.approx(slope * 1e4, rel=1e-6, abs=1e-9)
            assert snap.price_z == pytest.approx((p[t] - pw.mean()) / pw.std(ddof=1), rel=1e-7, abs=1e-9)
            assert snap.last_return == pytest.approx(math.log(p[t] / p[t - 1]), rel=1e-9, abs=1e-15)
        rets = np.diff(np.log(p[max(0, t - window) : t + 1]))
        if len(rets) >= 2:
            assert snap.vol == pytest.approx(rets.std(ddof=1), rel=1e-7)
            span = ts[t] - ts[max(0, t - window)]
            assert snap.vol_annualised == pytest.approx(math.sqrt(np.sum(rets**2) / (span / MS_PER_YEAR)), rel=1e-7)


def test_first_trade_has_no_return():
    snap = SymbolStats(5).update(0, 100.0, 1.0)
    assert math.isnan(snap.last_return) and math.isnan(snap.vol) and snap.vwap == 100.0


def test_book_metrics():
    m = book_metrics("61837.63", "3.0", "61837.64", "1.0")
    assert m.mid == pytest.approx(61837.635)
    assert m.spread_bps == pytest.approx(0.01 / 61837.635 * 1e4)
    assert m.microprice == pytest.approx((61837.63 * 1.0 + 61837.64 * 3.0) / 4.0)
    assert m.imbalance == pytest.approx(0.5)
    empty = book_metrics(1.0, 0.0, 2.0, 0.0)
    assert empty.microprice == 1.5 and math.isnan(empty.imbalance)


def test_push_then_snapshot_equals_update_at_every_point_asked():
    # the consumer pushes every trade and asks for the snapshot once per batch: it must be the snapshot `update`
    # (checked against numpy above) returns after the same trades, to the bit
    rng = np.random.default_rng(11)
    n = 400
    ts = 1_723_161_255_000 + np.cumsum(rng.integers(1, 900, n))
    p = 2_600.0 * np.exp(np.cumsum(1e-4 * rng.standard_normal(n)))
    q = rng.uniform(0.001, 3.0, n)
    every, lazy = SymbolStats(50), SymbolStats(50)
    asked = 0
    for t in range(n):
        expected = every.update(int(ts[t]), float(p[t]), float(q[t]))
        lazy.push(int(ts[t]), float(p[t]), float(q[t]))
        if t == 0 or rng.random() < 0.2:
            got = lazy.snapshot()
            for f in fields(expected):
                value, want = getattr(got, f.name), getattr(expected, f.name)
                assert value == want or (math.isnan(value) and math.isnan(want)), (t, f.name)
            asked += 1
    assert asked > 50
