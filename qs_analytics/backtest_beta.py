"""β_t and z_t columns for the backtest from the chosen β source: rolling OLS (the contract), Kalman or Huber.

* ``ols``: the batch command's `ols_beta` and `zscore_ols` (`olsz.ols_z_series`), the issue 9 §3 contract.
* ``kalman``: β_t, α_t = the Kalman filter's state after its update with row t (`KalmanHedge`, the engine's
  defaults δ, R, initial covariance from `qs_analytics.defaults`); warm from the first row.
* ``huber``: a Huber fit (`HuberFairValue`, warm-started) of y on x over the last N rows, refitted every
  `huber_every` rows (default 1: every row, an exact rolling fit; the live engine refits on a time/count
  cadence that, on candles, also means every row). Between refits the last fit serves. Empty until N rows.

For Kalman and Huber the spread is s_t = y_t − β_t·x_t − α_t and z_t its rolling z-score over the last N spreads
(std ddof 1), exactly as the engine and the dashboard compute them: both run through `hedge.HedgeSeries`, so the
backtest, the live chart and the engine cannot disagree on what a Kalman or Huber z is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qs_analytics.olsz import ols_z_series

BETA_SOURCES = ("ols", "kalman", "huber")
_KIND = {"kalman": "Kalman", "huber": "Huber"}


def check_source(source: str, huber_every: int = 1) -> None:
    if source not in BETA_SOURCES:
        raise ValueError(f"beta_source must be one of {', '.join(BETA_SOURCES)}, got {source!r}")
    if huber_every < 1:
        raise ValueError(f"huber_every must be >= 1, got {huber_every}")


def beta_z_columns(
    x: Sequence[float], y: Sequence[float], window: int, source: str = "ols", huber_every: int = 1
) -> tuple[list[float | None], list[float | None]]:
    """(β_t, z_t) for every row; None where empty (not warm yet, or undefined)."""
    check_source(source, huber_every)
    if source == "ols":
        rows = ols_z_series(list(x), list(y), window)
        return [r.beta for r in rows], [r.z for r in rows]
    # imported here: scikit-learn (Huber) is a heavy import the OLS contract path does not need
    from qs_analytics.hedge import HedgeSeries

    hs = HedgeSeries(_KIND[source], window, robust_every=huber_every)
    betas: list[float | None] = []
    zs: list[float | None] = []
    for t, (a, b) in enumerate(zip(x, y, strict=True)):
        h = hs.step(t, b, a)
        betas.append(h.beta if math.isfinite(h.beta) else None)
        zs.append(h.zscore if math.isfinite(h.zscore) else None)
    return betas, zs
