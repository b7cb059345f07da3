"""Cost of the analytics engine per observation, next to the naive way of computing the same numbers.

Prints figures; asserts nothing. Run from the repository root: `python -m bench.bench_analytics [--n 20000]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor

from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.kalman import KalmanHedge, kalman_filter_batch
from qs_analytics.ols import RollingOLS
from qs_analytics.robust import HuberFairValue
from qs_analytics.spread import RollingCorrelation, SpreadZScore
from qs_analytics.stationarity import adf_test


def per_call(fn: Callable[[int], object], n: int) -> float:
    """Seconds per call of fn(i) for i in range(n)."""
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--window", type=int, default=300)
    a = ap.parse_args()
    n, w = a.n, a.window
    rng = np.random.default_rng(0)
    xa = 60_000 + np.cumsum(rng.normal(0, 5, n + w))
    ya = 0.05 * xa + 3 + rng.normal(0, 0.3, n + w)
    x, y = xa.tolist(), ya.tolist()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, n={n}, window={w}")

    ols, kal, z, corr = RollingOLS(w), KalmanHedge(1e-7, 0.1, 1.0), SpreadZScore(w), RollingCorrelation(w)

    def incremental(i: int) -> None:
        xi, yi = x[i], y[i]
        f = ols.update(xi, yi, i)
        kal.update(xi, yi)
        if f is not None:
            z.update(yi - f.beta * xi - f.alpha, i)
        corr.update(xi, yi, i)

    rows: list[tuple[str, float]] = []
    rows.append(("incremental set: OLS + Kalman + spread z + corr (classes)", per_call(incremental, n)))
    for name, obj in [("  RollingOLS.update", RollingOLS(w)), ("  RollingCorrelation.update", RollingCorrelation(w))]:
        rows.append((name, per_call(lambda i, o=obj: o.update(x[i], y[i], i), n)))
    k2, z2 = KalmanHedge(1e-7, 0.1, 1.0), SpreadZScore(w)
    rows.append(("  KalmanHedge.update", per_call(lambda i: k2.update(x[i], y[i]), n)))
    rows.append(("  SpreadZScore.update", per_call(lambda i: z2.update(y[i] - 0.05 * x[i], i), n)))
    lean = PairEngine(PairConfig(window=w, theilsen=False, huber_every_n=10**9, huber_every_ms=None, obs_noise=0.1))
    rows.append(
        ("PairEngine.update, Huber/Theil-Sen never due (dict out)", per_call(lambda i: lean.update(i, y[i], x[i]), n))
    )
    full = PairEngine(
        PairConfig(window=w, huber_every_n=100, huber_every_ms=None, theilsen=True, theilsen_every_n=1_000)
    )
    rows.append(
        ("PairEngine.update, Huber/100 obs, Theil-Sen/1000 obs", per_call(lambda i: full.update(i, y[i], x[i]), n))
    )

    hub = HuberFairValue(w, refit_every_n=10**9)
    for i in range(w):
        hub.update(i, x[i], y[i])
    hub.refit(0)
    warm = per_call(lambda i: (hub.update(i, x[i + w], y[i + w]), hub.refit(i)), 200)
    rows.append(("Huber refit (warm-started, standardised), per refit", warm))
    spreads = np.asarray(y[:w]) - 0.05 * np.asarray(x[:w])
    rows.append((f"ADF on {w} spreads (bounded AIC lag search), per run", per_call(lambda i: adf_test(spreads), 50)))

    print("\n## ours")
    for name, sec in rows:
        print(f"{name:<62} {sec * 1e6:>12.2f} us")

    # the naive way: recompute everything over the window on each tick
    m = min(n, 2_000)

    def naive_ols(i: int) -> None:
        np.polyfit(xa[i : i + w], ya[i : i + w], 1)

    def naive_kalman(i: int) -> None:
        kalman_filter_batch(xa[i : i + w], ya[i : i + w], 1e-7, 0.1, 1.0)

    def naive_huber(i: int) -> None:
        xs, ys = xa[i : i + w], ya[i : i + w]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            HuberRegressor().fit(((xs - xs.mean()) / xs.std()).reshape(-1, 1), (ys - ys.mean()) / ys.std())

    naive = [
        ("np.polyfit over the window per tick", per_call(naive_ols, m), rows[1][1]),
        ("simdkalman over the window per tick", per_call(naive_kalman, max(m // 20, 20)), rows[3][1]),
        ("Huber cold refit per tick", per_call(naive_huber, max(m // 10, 50)), warm / 100),
    ]
    print("\n## naive, per tick                                               naive        ours    speed-up")
    for name, sec, ours in naive:
        print(f"{name:<58} {sec * 1e6:>10.1f} us {ours * 1e6:>9.2f} us {sec / ours:>9.0f}x")
    print("(ours for Huber = one warm refit every 100 observations, amortised per tick)")


if __name__ == "__main__":
    main()
