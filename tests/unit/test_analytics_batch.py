"""The batch command end to end, as a subprocess, against an independent pandas/statsmodels/numpy computation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.analytics", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def kalman_reference(x, y, delta, r, c):
    """Plain numpy matrix Kalman filter, written from the contract's definition."""
    m, p, q = np.zeros(2), np.eye(2) * c, np.eye(2) * delta / (1 - delta)
    out = []
    for xt, yt in zip(x, y, strict=True):
        p = p + q
        h = np.array([xt, 1.0])
        s = h @ p @ h + r
        k = p @ h / s
        m = m + k * (yt - h @ m)
        p = p - np.outer(k, h @ p)
        out.append(m.copy())
    return np.array(out)


def test_cli_matches_independent_computation(tmp_path):
    rng = np.random.default_rng(11)
    n, window = 80, 12
    x = 60_000 + np.cumsum(rng.normal(0, 5, n))
    y = 0.05 * x + 3 + rng.normal(0, 0.2, n)
    df = pd.DataFrame({"time": 1_723_161_255_000 + 1_000 * np.arange(n), "x": x, "y": y, "note": "a"})
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    res = cli("--input", str(src), "--window", str(window), "--delta", "1e-6", "--obs-noise", "0.04",
              "--init-cov", "1", "--output", str(dst))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(dst)
    assert list(out.columns[:4]) == ["time", "x", "y", "note"] and len(out) == n
    assert (out["x"].to_numpy() == x).all() and (out["note"] == "a").all()

    beta = np.full(n, np.nan)
    alpha = np.full(n, np.nan)
    r2 = np.full(n, np.nan)
    for t in range(window - 1, n):
        xs, ys = x[t - window + 1 : t + 1], y[t - window + 1 : t + 1]
        fit = sm.OLS(ys - ys.mean(), sm.add_constant(xs - xs.mean())).fit()
        beta[t], r2[t] = fit.params[1], fit.rsquared
        alpha[t] = ys.mean() + fit.params[0] - beta[t] * xs.mean()
    spread = pd.Series(y - beta * x - alpha)
    roll = spread.rolling(window, min_periods=window)
    z = (spread - roll.mean()) / roll.std(ddof=1)

    assert out["ols_beta"][: window - 1].isna().all() and out["zscore_ols"][: 2 * window - 2].isna().all()
    assert out["zscore_ols"][2 * window - 2 :].notna().all()
    np.testing.assert_allclose(out["ols_beta"], beta, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["ols_alpha"], alpha, rtol=1e-9, atol=1e-9 * 3000, equal_nan=True)
    np.testing.assert_allclose(out["ols_r2"], r2, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["spread_ols"], spread, rtol=1e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["zscore_ols"], z, rtol=1e-6, atol=1e-6, equal_nan=True)
    kal = kalman_reference(x, y, 1e-6, 0.04, 1.0)
    np.testing.assert_allclose(out["kalman_beta"], kal[:, 0], rtol=1e-9)
    np.testing.assert_allclose(out["kalman_alpha"], kal[:, 1], rtol=1e-6, atol=1e-9 * 3000)
    # full float precision: the text reads back as the very float the library produced
    text = dst.read_text().splitlines()[window].split(",")
    assert float(text[4]) == out["ols_beta"][window - 1] and len(text[4]) > 12


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("time,x,y\n1,2,3\n2,abc,4\n", "row 3, column 'x': 'abc' is not a number"),
        ("time,x\n1,2\n", "missing column(s) y"),
        ("time,x,y\n1,2,\n", "row 2, column 'y'"),
        ("time,x,y\n1,2,nan\n", "row 2, column 'y': 'nan' is not a finite number"),
        ("", "empty"),
    ],
)
def test_bad_input_names_row_and_column_with_exit_code_2(tmp_path, content, needle):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(content)
    res = cli("--input", str(src), "--window", "3", "--output", str(dst))
    assert res.returncode == 2
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert not dst.exists()


def test_missing_file_and_bad_window(tmp_path):
    res = cli("--input", str(tmp_path / "nope.csv"), "--window", "3", "--output", str(tmp_path / "o.csv"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = cli("--input", "x.csv", "--window", "1", "--output", "o.csv")
    assert res.returncode == 2 and "--window must be >= 2" in res.stderr
