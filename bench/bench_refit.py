"""The robust refits' cost with OpenBLAS's default threads and with one (what the analytics process uses).

A Huber (and, optionally, Theil–Sen) refit solves on a window of ~300 points: far too small for BLAS threads to
help, but OpenBLAS starts one per core, and on a busy 2-core machine their spinning costs more than the solve. The
analytics consumer limits the process to one BLAS thread (worker/analytics_consumer.py); this prints both side by
side, CPU and wall ms per refit, with the load average. Asserts nothing. Run from the repository root:
`python -m bench.bench_refit [--window 300] [--fits 200] [--theilsen]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from bench.common import load, machine
from qs_analytics.robust import HuberFairValue, TheilSenFairValue


def _series(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = 60_000 + np.cumsum(rng.normal(0, 5, n))
    return x, 0.05 * x + rng.normal(0, 2, n)


def _per_fit(fit: HuberFairValue | TheilSenFairValue, window: int, fits: int) -> tuple[float, float]:
    """CPU and wall ms per refit: the window is filled first, then one refit per observation."""
    x, y = _series(window + fits)
    for i in range(window):
        fit.update(i, float(x[i]), float(y[i]))
    c0, w0, done = time.process_time(), time.perf_counter(), fit.fits
    for i in range(window, window + fits):
        fit.update(i, float(x[i]), float(y[i]))
    n = max(1, fit.fits - done)
    return (time.process_time() - c0) / n * 1e3, (time.perf_counter() - w0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=300)
    ap.add_argument("--fits", type=int, default=200)
    ap.add_argument("--theilsen", action="store_true", help="also Theil–Sen (~50 ms a refit)")
    a = ap.parse_args()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"machine {machine()}; BLAS {[(i['internal_api'], i['num_threads']) for i in blas]}")
    kinds: list[tuple[str, Callable[[], HuberFairValue | TheilSenFairValue]]] = [
        ("Huber", lambda: HuberFairValue(a.window, refit_every_n=1))]
    if a.theilsen:
        kinds.append(("Theil–Sen", lambda: TheilSenFairValue(a.window, refit_every_n=1, max_subpopulation=2_000)))
    print("| refit | BLAS threads | CPU ms/refit | wall ms/refit | load avg |")
    print("| --- | --- | ---: | ---: | --- |")
    for name, make in kinds:
        fits = a.fits if name == "Huber" else max(1, a.fits // 10)
        cpu, wall = _per_fit(make(), a.window, fits)
        print(f"| {name} | default ({max(i['num_threads'] for i in blas)}) | {cpu:.2f} | {wall:.2f} | {load()} |")
        with threadpool_limits(1, user_api="blas"):
            cpu, wall = _per_fit(make(), a.window, fits)
        print(f"| {name} | 1 | {cpu:.2f} | {wall:.2f} | {load()} |")


if __name__ == "__main__":
    main()
