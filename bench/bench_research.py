"""Pair research costs: the vectorised scanner next to statsmodels pair by pair, the backtest, GARCH.

Prints figures; asserts nothing (except that the two scanners agree on the sampled pairs, which is what makes
the comparison fair). Run from the repository root: `python -m bench.bench_research [--sample 300]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings

import numpy as np
from statsmodels.tsa.stattools import coint

from qs_analytics.backtest import BacktestParams, run_backtest
from qs_analytics.backtest_metrics import sweep
from qs_analytics.garch import fit_garch
from qs_analytics.meanrev import hurst
from qs_analytics.olsz import ols_z_series
from qs_analytics.scanner import scan_pairs
from qs_analytics.stationarity import half_life


def market(seed: int, T: int, N: int) -> np.ndarray:
    """N log-normal price series on 5 common random walks plus their own walks and noise."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(size=(T, 5)), axis=0)
    own = np.cumsum(rng.normal(size=(T, N)), axis=0) * rng.uniform(0, 1, N)
    return np.exp(np.log(rng.uniform(1, 5_000, N)) + 0.002 * (common @ rng.normal(size=(5, N))) + 0.001 * own
                  + 0.003 * rng.normal(size=(T, N)))  # fmt: skip


def pair_by_pair(c: np.ndarray, a: int, b: int) -> tuple[float, float, float, float]:
    """What one scanner row costs done the usual way: coint both ways, OLS residual, half-life, Hurst."""
    ab = coint(c[:, a], c[:, b], trend="c")
    ba = coint(c[:, b], c[:, a], trend="c")
    y, x = (c[:, b], c[:, a]) if ba[1] < ab[1] else (c[:, a], c[:, b])
    beta, alpha = np.polyfit(x, y, 1)
    s = y - beta * x - alpha
    half_life(s)
    hurst(s)
    return float(ab[0]), float(ba[0]), float(ab[1]), float(ba[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--points", type=int, default=1_440)
    ap.add_argument("--sample", type=int, default=300, help="pairs timed with statsmodels (extrapolated)")
    ap.add_argument("--rows", type=int, default=100_000, help="backtest rows")
    a = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()}")

    N, T = a.symbols, a.points
    c = market(1, T, N)
    syms = [f"S{i:03d}USDT" for i in range(N)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    table = scan_pairs(c, syms, liquidity=np.ones(N))
    t_vec = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    pairs = len(table["p_value"])
    rng = np.random.default_rng(2)
    sample = rng.choice(pairs, size=min(a.sample, pairs), replace=False)
    ia, ib = np.triu_indices(N, 1)
    t0 = time.perf_counter()
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in sample:
            s_ab, s_ba, _, _ = pair_by_pair(c, int(ia[k]), int(ib[k]))
            for got, want in ((table["stat_y_on_x"][k], s_ab), (table["stat_x_on_y"][k], s_ba)):
                worst = max(worst, abs(got - want) / abs(want))
    t_sm = (time.perf_counter() - t0) / len(sample) * pairs
    assert worst < 1e-8, worst
    print(f"\nscanner, {pairs} pairs ({N} symbols) x {T} points, coint default lags (AIC), both directions")
    mem = f"peak RSS {rss1 / 1024:.0f} MiB (+{(rss1 - rss0) / 1024:.0f} MiB)"
    print(f"  vectorised (ours)            {t_vec:8.2f} s   {mem}")
    print(f"  statsmodels pair by pair     {t_sm:8.2f} s  (extrapolated from {len(sample)} random pairs)")
    print(f"  speed-up                     {t_sm / t_vec:8.1f} x   worst relative ADF difference {worst:.1e}")

    n = a.rows
    x = market(3, n, 2)
    t0 = time.perf_counter()
    rows = ols_z_series(x[:, 0].tolist(), x[:, 1].tolist(), 300)
    t_z = time.perf_counter() - t0
    beta = [r.beta for r in rows]
    z = [r.z for r in rows]
    p = BacktestParams(300, 2.0, 0.0, 10_000.0, 1.0, 1.0, 4.0, 600)
    xs, ys = x[:, 0].tolist(), x[:, 1].tolist()
    t0 = time.perf_counter()
    res = run_backtest(xs, ys, p, beta, z)
    t_bt = time.perf_counter() - t0
    print(f"\nbacktest, {n} rows, window 300 ({len(res.trades)} trades)")
    print(f"  rules only (β, z given)      {n / t_bt:12,.0f} rows/s")
    print(f"  with the OLS/z columns       {n / (t_bt + t_z):12,.0f} rows/s")
    m = 20_000
    entries = [1.0, 1.5, 2.0, 2.5, 3.0]
    windows = [60, 120, 300, 600, 1200]
    t0 = time.perf_counter()
    sweep(list(range(m)), xs[:m], ys[:m], p, entries, windows)
    t_sw = time.perf_counter() - t0
    print(f"  sweep {len(entries)} entries x {len(windows)} windows on {m} rows: {t_sw:.2f} s "
          f"({len(entries) * len(windows) * m / t_sw:,.0f} cell-rows/s)")  # fmt: skip

    from tests.unit.research_data import btc_1m

    _, close, _ = btc_1m()
    for label, series in (("BTCUSDT 1m, 1,440 closes (real)", close), ("10,000 simulated closes", x[:10_001, 0])):
        t0 = time.perf_counter()
        for _ in range(3):
            f = fit_garch(series, 365.25 * 1440)
        dt = (time.perf_counter() - t0) / 3
        print(f"\nGARCH(1,1) fit + 60-step forecast, {label}: {dt * 1e3:.0f} ms "
              f"(persistence {f.persistence:.3f}, σ next {f.sigma_next:.4f} %)")  # fmt: skip
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
