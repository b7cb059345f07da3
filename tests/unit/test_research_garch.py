"""GARCH(1,1) against `arch_model(...).fit()` called directly, and the `garch` command as a subprocess."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from arch import arch_model

from qs_analytics.garch import fit_garch
from tests.unit.research_data import btc_1m

ROOT = Path(__file__).resolve().parents[2]


def reference(close):
    r = 100.0 * np.diff(np.log(np.asarray(close, dtype=float)))
    with warnings.catch_warnings(record=True):  # arch adds its own 'always' filter
        warnings.simplefilter("ignore")
        res = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False).fit(disp="off")
        var = res.forecast(horizon=60, reindex=False).variance.to_numpy()[-1]
    return res, var


def assert_matches(close, ppy):
    got = fit_garch(close, ppy)
    res, var = reference(close)
    p = res.params
    assert (got.mu, got.omega, got.alpha, got.beta) == pytest.approx(
        (p["mu"], p["omega"], p["alpha[1]"], p["beta[1]"]), rel=1e-12)  # fmt: skip
    assert got.persistence == pytest.approx(p["alpha[1]"] + p["beta[1]"], rel=1e-12)
    assert got.sigma_now == pytest.approx(res.conditional_volatility[-1], rel=1e-12)
    assert (got.sigma_next, got.sigma_5, got.sigma_60) == pytest.approx(
        tuple(math.sqrt(var[h - 1]) for h in (1, 5, 60)), rel=1e-12)  # fmt: skip
    assert got.cum_sigma_60 == pytest.approx(math.sqrt(var.sum()), rel=1e-12)
    assert got.sigma_next_ann == pytest.approx(math.sqrt(var[0]) * math.sqrt(ppy), rel=1e-12)
    # the next-step variance is the recursion applied to the last residual and variance
    eps = res.resid[-1]
    assert var[0] == pytest.approx(
        p["omega"] + p["alpha[1]"] * eps**2 + p["beta[1]"] * res.conditional_volatility[-1] ** 2, rel=1e-9
    )
    return got


def test_real_btc_minutes():
    _, c, _ = btc_1m()
    got = assert_matches(c, 365.25 * 1440)
    assert got.nobs == 1439 and got.sigma_next > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_garch(seed):
    rng = np.random.default_rng(seed)
    n, omega, a, b = 1500, 0.01, 0.08, 0.9
    r = np.empty(n)
    v = omega / (1 - a - b)
    for t in range(n):
        r[t] = math.sqrt(v) * rng.normal()
        v = omega + a * r[t] ** 2 + b * v
    close = 100 * np.exp(np.concatenate([[0], np.cumsum(r / 100)]))
    got = assert_matches(close, 525_960)
    assert 0.8 < got.persistence < 1.0


def test_too_short_and_constant_are_named():
    with pytest.raises(ValueError, match="at least 30 returns"):
        fit_garch(np.linspace(1, 2, 10), 1.0)
    with pytest.raises(ValueError, match="constant"):
        fit_garch(np.exp(np.arange(100) * 0.01), 1.0)


def test_cli_subprocess(tmp_path):
    ts, c, _ = btc_1m()
    src = tmp_path / "in.csv"
    src.write_text("time,close\n" + "".join(f"{t},{v!r}\n" for t, v in zip(ts.tolist(), c.tolist(), strict=True)))
    out = tmp_path / "out.csv"
    p = subprocess.run([sys.executable, "-m", "worker.analytics", "garch", "--input", str(src), "--output", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and {"omega", "alpha", "beta", "sigma_next"} <= set(rows[0])
    got = fit_garch(c, 365.25 * 1440)  # 1m steps in ms: the periods per year the command infers
    # Equal to the optimiser's precision, not to the bit: the subprocess and this process may run BLAS with
    # different thread counts (the analytics handler limits its process to one), which reorders sums.
    for k in ("omega", "alpha", "beta", "sigma_next", "sigma_next_ann", "periods_per_year"):
        assert float(rows[0][k]) == pytest.approx(getattr(got, k), rel=1e-6), k
    bad = tmp_path / "bad.csv"
    bad.write_text("time,close\n1,100\n2,0\n")
    p = subprocess.run([sys.executable, "-m", "worker.analytics", "garch", "--input", str(bad), "--output", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "row 3, column 'close'" in p.stderr and not out.exists()
