"""Pair scanner: every pair of N symbols at once, vectorised with numpy (no per-pair statsmodels call).

For closes C (T × N) and every unordered pair {a, b}:
* corr: Pearson correlation of the two legs' log returns;
* Engle–Granger both directions (a on b, b on a) with statsmodels `coint(y, x, trend="c")`'s exact numbers
  and its default lag choice (autolag "aic", Schwert's maximum lag; see `coint`); `max_lag`/`autolag=None`
  give `coint(..., maxlag=k, autolag=None)`. The better direction (smaller p-value) names y and x;
* for that direction: OLS β and α (y = βx + α on price levels, as the live monitor and the backtest use),
  the spread s = y − βx − α, its AR(1) half-life in rows (`stationarity.half_life`), Hurst exponent
  (`meanrev`), σ (ddof 1) and current z = s_last / σ (the OLS spread has mean 0);
* liquidity: the smaller of the two legs' median quote volume per candle (a pair is as liquid as its
  thinner leg), and the larger of their median quoted spreads in bps where book data exists (nan otherwise).
Filters and a ranking (by p-value, then half-life) work on the resulting table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qs_analytics.coint import MIN_POINTS, engle_granger_many
from qs_analytics.meanrev import hurst_many

Array = npt.NDArray[np.float64]
COLUMNS = (
    "y", "x", "corr", "p_value", "stat", "p_y_on_x", "stat_y_on_x", "p_x_on_y", "stat_x_on_y", "lags",
    "beta", "alpha", "half_life", "hurst", "spread_sigma", "z", "liquidity", "spread_bps", "n",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScanFilter:
    max_p_value: float = 0.05
    min_half_life: float = 0.0
    max_half_life: float = math.inf
    min_liquidity: float = 0.0
    max_spread_bps: float = math.inf  # pairs without book data (spread nan) pass: nothing to judge them by


def _half_life(s: Array) -> Array:
    lag = s[:, :-1]
    d = np.diff(s, axis=1)
    lc = lag - lag.mean(axis=1, keepdims=True)
    sxx = np.einsum("pn,pn->p", lc, lc)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.einsum("pn,pn->p", lc, d - d.mean(axis=1, keepdims=True)) / sxx
        hl = -math.log(2.0) / np.log1p(b)
    return np.where(b >= 0, np.inf, np.where((b <= -1) | ~np.isfinite(b), np.nan, hl))


def scan_pairs(
    closes: npt.ArrayLike,
    symbols: Sequence[str],
    liquidity: npt.ArrayLike | None = None,
    spread_bps: npt.ArrayLike | None = None,
    max_lag: int | None = None,
    autolag: str | None = "aic",
    hurst_max_lag: int = 20,
    chunk: int = 256,
) -> dict[str, npt.NDArray[np.generic]]:
    """The table (column name → array, one entry per pair i < j) for closes (T × N, finite, > 0)."""
    c = np.asarray(closes, dtype=np.float64)
    T, N = c.shape
    if len(symbols) != N:
        raise ValueError(f"{N} price columns but {len(symbols)} symbols")
    if N < 2 or T < MIN_POINTS:
        raise ValueError(f"need at least 2 symbols and {MIN_POINTS} rows, got {N} and {T}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("closes must be finite and > 0 (fill or drop gaps before scanning)")
    liq = np.full(N, np.nan) if liquidity is None else np.asarray(liquidity, dtype=np.float64)
    spr = np.full(N, np.nan) if spread_bps is None else np.asarray(spread_bps, dtype=np.float64)
    ia, ib = np.triu_indices(N, k=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr_m = np.corrcoef(np.diff(np.log(c), axis=0), rowvar=False)
    out: dict[str, list[Array]] = {k: [] for k in COLUMNS}
    ct = np.ascontiguousarray(c.T)
    for s in range(0, ia.size, chunk):
        a, b = ia[s : s + chunk], ib[s : s + chunk]
        ab = engle_granger_many(ct[a], ct[b], max_lag, autolag)  # y = a, x = b
        ba = engle_granger_many(ct[b], ct[a], max_lag, autolag)
        flip = ba["p_value"] < ab["p_value"]

        def pick(k: str, flip: npt.NDArray[np.bool_] = flip, ab: dict[str, Any] = ab, ba: dict[str, Any] = ba) -> Array:
            return np.where(flip, ba[k], ab[k])

        resid = np.where(flip[:, None], ba["resid"], ab["resid"])
        sigma = resid.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sigma > 0, resid[:, -1] / sigma, np.nan)
        out["y"].append(np.where(flip, b, a))
        out["x"].append(np.where(flip, a, b))
        out["corr"].append(corr_m[a, b])
        out["p_value"].append(pick("p_value"))
        out["stat"].append(pick("stat"))
        out["p_y_on_x"].append(ab["p_value"])
        out["stat_y_on_x"].append(ab["stat"])
        out["p_x_on_y"].append(ba["p_value"])
        out["stat_x_on_y"].append(ba["stat"])
        out["lags"].append(pick("lags"))
        out["beta"].append(pick("beta"))
        out["alpha"].append(pick("alpha"))
        out["half_life"].append(_half_life(resid))
        out["hurst"].append(hurst_many(resid, hurst_max_lag))
        out["spread_sigma"].append(sigma)
        out["z"].append(z)
        out["liquidity"].append(np.fmin(liq[a], liq[b]))
        out["spread_bps"].append(np.fmax(spr[a], spr[b]))
        out["n"].append(np.full(a.size, T))
    table: dict[str, npt.NDArray[np.generic]] = {k: np.concatenate(v) for k, v in out.items()}
    # "y on x" / "x on y" name the original order (a, b) of each pair; y and x name the better direction
    sym = np.asarray(symbols, dtype=object)
    table["y"] = sym[table["y"].astype(np.int64)]
    table["x"] = sym[table["x"].astype(np.int64)]
    table["sym_a"] = sym[ia]
    table["sym_b"] = sym[ib]
    return table


def filter_and_rank(table: dict[str, npt.NDArray[np.generic]], f: ScanFilter) -> npt.NDArray[np.int64]:
    """Row indices that pass `f`, best first: smallest p-value, then shortest half-life."""
    p = table["p_value"].astype(np.float64)
    hl = table["half_life"].astype(np.float64)
    liq = table["liquidity"].astype(np.float64)
    spr = table["spread_bps"].astype(np.float64)
    ok = (p <= f.max_p_value) & (hl >= f.min_half_life) & (hl <= f.max_half_life)
    ok &= ~(liq < f.min_liquidity) if f.min_liquidity <= 0 else liq >= f.min_liquidity
    ok &= np.isnan(spr) | (spr <= f.max_spread_bps)
    idx = np.flatnonzero(ok)
    return idx[np.lexsort((hl[idx], p[idx]))]
