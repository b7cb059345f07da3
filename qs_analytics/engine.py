"""One pair's analytics: every model of this package composed behind `PairEngine.update(ts_ms, y, x)`.

Per observation the engine runs only O(1) work (rolling OLS, Kalman, spread z-scores, correlation, and
the robust fits' buffer appends); Huber/Theil–Sen refit on their schedule, the half-life every
`half_life_every_n` observations, and the ADF test only when the caller asks (`adf_due` + `run_adf`),
so it can be pushed off the hot path. All times are observation times passed in: no clock here.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qs_analytics import defaults as d
from qs_analytics.coint import MIN_POINTS as MIN_EG_POINTS
from qs_analytics.coint import engle_granger_both
from qs_analytics.kalman import KalmanHedge
from qs_analytics.ols import RollingOLS
from qs_analytics.robust import HuberFairValue, TheilSenFairValue
from qs_analytics.spread import RollingCorrelation, SpreadZScore, spread
from qs_analytics.stationarity import MIN_ADF_POINTS, ADFResult, adf_test, half_life

BetaSource = Literal["ols", "kalman", "huber", "theilsen"]
_HALF_LIFE_MIN = 20


class PairConfig(BaseModel):
    """Engine settings; unknown keys are an error, so a misspelt setting cannot be silently ignored.

    Defaults: `qs_analytics.defaults`, the same as the worker's `Settings`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(d.WINDOW, ge=2, description="rolling window in observations (a cap in time mode)")
    window_ms: int | None = Field(None, gt=0, description="also drop observations older than ts − window_ms")
    min_obs: int = Field(30, ge=2, description="time mode only: observations needed before a rolling fit")
    beta_source: BetaSource = "ols"
    delta: float = Field(d.KALMAN_DELTA, gt=0.0, lt=1.0)
    obs_noise: float = Field(d.KALMAN_OBS_NOISE, gt=0.0)
    init_cov: float = Field(d.KALMAN_INIT_COV, gt=0.0)
    robust_window: int | None = Field(None, ge=3, description="Huber/Theil–Sen window (default: window)")
    huber_every_n: int = Field(d.HUBER_EVERY_N, ge=1)
    huber_every_ms: int | None = Field(d.HUBER_EVERY_MS, gt=0)
    huber_epsilon: float = Field(1.35, gt=1.0)
    huber_alpha: float = Field(1e-4, ge=0.0)
    theilsen: bool = d.THEILSEN
    theilsen_every_n: int = Field(500, ge=1)
    theilsen_max_subpopulation: int = Field(2_000, ge=10)
    adf_every_ms: int = Field(d.ADF_EVERY_MS, gt=0)
    adf_max_lag: int | None = Field(None, ge=0)
    half_life_every_n: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _check(self) -> PairConfig:
        if self.beta_source == "theilsen" and not self.theilsen:
            raise ValueError("beta_source 'theilsen' needs theilsen=True")
        return self


class PairEngine:
    """All metrics of one pair; `update` returns a dict of the warm ones (finite values only)."""

    def __init__(self, config: PairConfig | None = None) -> None:
        cfg = config or PairConfig()
        self.config = cfg
        timed = cfg.window_ms is not None
        min_obs = min(cfg.min_obs, cfg.window) if timed else None
        self._ols = RollingOLS(cfg.window, cfg.window_ms, min_obs)
        self._kalman = KalmanHedge(cfg.delta, cfg.obs_noise, cfg.init_cov)
        rw = cfg.robust_window or max(cfg.window, 3)
        self._huber = HuberFairValue(
            rw, cfg.huber_every_n, cfg.huber_every_ms, cfg.huber_epsilon, cfg.huber_alpha
        )  # fmt: skip
        self._theil = (
            TheilSenFairValue(rw, cfg.theilsen_every_n, None, max_subpopulation=cfg.theilsen_max_subpopulation)
            if cfg.theilsen
            else None
        )
        self._z = SpreadZScore(cfg.window, cfg.window_ms, min_obs)
        self._z_ols = SpreadZScore(cfg.window, cfg.window_ms, min_obs)
        self._corr = RollingCorrelation(cfg.window, cfg.window_ms, min_obs)
        self.n = 0
        self._hl_since = 0
        self._hl: dict[str, float] = {}
        self._hl_done = False
        self._adf: ADFResult | None = None
        self._adf_metrics: dict[str, float] = {}
        self._beta_key = cfg.beta_source + "_beta"
        self._alpha_key = cfg.beta_source + "_alpha"
        self._adf_ts: int | None = None
        # the legs behind the spread window, for the Engle–Granger test run with the ADF
        self._legs: deque[tuple[float, float]] = deque(maxlen=cfg.window)

    def update(self, ts_ms: int, y: float, x: float) -> dict[str, float]:
        """Add one aligned observation; return every warm metric (nan/inf mean "not defined": left out)."""
        self.n += 1
        out: dict[str, float] = {"n": float(self.n)}
        self._ols_metrics(out, ts_ms, y, x)
        k = self._kalman.update(x, y)
        out["kalman_beta"] = k.beta
        out["kalman_alpha"] = k.alpha
        out["kalman_e"] = k.e
        out["kalman_s"] = k.s
        hub = self._huber.update(ts_ms, x, y)
        if hub is not None:
            out["huber_beta"] = hub.beta
            out["huber_alpha"] = hub.alpha
            out["huber_fair_value"] = hub.beta * x + hub.alpha
        if self._theil is not None:
            theil = self._theil.update(ts_ms, x, y)
            if theil is not None:
                out["theilsen_beta"] = theil.beta
                out["theilsen_alpha"] = theil.alpha
        b = out.get(self._beta_key)
        if b is not None:
            self._hedge_metrics(out, ts_ms, y, x, b, out[self._alpha_key])
        c = self._corr.update(x, y, ts_ms)
        if c is not None and c == c:
            out["corr"] = c
        if self._hl:
            out.update(self._hl)
        if self._adf_metrics:
            out.update(self._adf_metrics)
        return out

    def _ols_metrics(self, out: dict[str, float], ts_ms: int, y: float, x: float) -> None:
        ols = self._ols.update(x, y, ts_ms)
        if ols is None or ols.reason is not None:
            return
        ob = ols.beta
        oa = ols.alpha
        out["ols_beta"] = ob
        out["ols_alpha"] = oa
        if ols.r2 == ols.r2:
            out["ols_r2"] = ols.r2
        if ols.resid_std == ols.resid_std:
            out["ols_resid_std"] = ols.resid_std
        s_ols = spread(y, x, ob, oa)
        out["spread_ols"] = s_ols
        zo = self._z_ols.update(s_ols, ts_ms)
        if zo is not None and zo.z == zo.z:
            out["zscore_ols"] = zo.z

    def _hedge_metrics(self, out: dict[str, float], ts_ms: int, y: float, x: float, b: float, a: float) -> None:
        """The chosen hedge (β, α): fair value, spread and its z-score, half-life."""
        fv = b * x + a
        sp = spread(y, x, b, a)  # the one definition: spread_ols, the batch CLI and the dashboard use it too
        out["hedge_beta"] = b
        out["hedge_alpha"] = a
        out["fair_value"] = fv
        out["spread"] = sp
        z = self._z.update(sp, ts_ms)
        self._legs.append((y, x))
        if z is not None:
            if z.z == z.z:
                out["zscore"] = z.z
            out["spread_mean"] = z.mean
            out["spread_std"] = z.std
        self._hl_since += 1
        if self._hl_since >= self.config.half_life_every_n or not self._hl_done:
            self._refresh_half_life()

    def _refresh_half_life(self) -> None:
        if self._z.n < min(_HALF_LIFE_MIN, self.config.window):
            return
        self._hl_since = 0
        self._hl_done = True
        spreads = self._z.values()
        hl = half_life(spreads)
        self._hl = {}
        if hl is not None and math.isfinite(hl.half_life):
            self._hl["half_life"] = hl.half_life
            if len(spreads) > 1:
                self._hl["half_life_ms"] = hl.half_life * self._z.span_ms() / (len(spreads) - 1)

    def slow_step_due(self, ts_ms: int) -> bool:
        """Whether the next `update` at `ts_ms` refits Huber or Theil–Sen, or makes the ADF due: milliseconds of
        work, before which a caller holding computed results can publish them (never false when one follows)."""
        if self._huber.due_next(ts_ms) or (self._theil is not None and self._theil.due_next(ts_ms)):
            return True
        if self._z.n + 1 < MIN_ADF_POINTS:
            return False
        return self._adf_ts is None or ts_ms - self._adf_ts >= self.config.adf_every_ms

    def adf_due(self, ts_ms: int) -> bool:
        """True when the ADF test should run: enough spreads and `adf_every_ms` since the last run."""
        if self._z.n < MIN_ADF_POINTS:
            return False
        return self._adf_ts is None or ts_ms - self._adf_ts >= self.config.adf_every_ms

    def run_adf(self, ts_ms: int | None = None) -> ADFResult:
        """ADF on the configured source's spread window; its figures join the metrics from then on."""
        res = adf_test(self._z.values(), max_lag=self.config.adf_max_lag)
        self._adf = res
        self._adf_metrics = (
            {"adf_stat": res.statistic, "adf_pvalue": res.p_value, "adf_lags": float(res.lags_used)} if res.ran else {}
        )
        self._adf_metrics.update(self._engle_granger())
        if ts_ms is not None:
            self._adf_ts = ts_ms
        return res

    def _engle_granger(self) -> dict[str, float]:
        """Engle–Granger on the legs of the same window, both directions (MacKinnon's residual-based p-values).

        The ADF above tests a spread whose β was fitted on these very points, so its own critical values are
        too lenient; this is the test that accounts for the estimated β. `eg_direction` 1 means y regressed
        on x (the pair as named) had the smaller p-value, −1 that x on y had.
        """
        n = min(len(self._z.values()), len(self._legs))
        if n < MIN_EG_POINTS:
            return {}
        legs = list(self._legs)[-n:]
        ys = [p[0] for p in legs]
        xs = [p[1] for p in legs]
        try:
            both = engle_granger_both(ys, xs)
        except (ValueError, ArithmeticError):  # constant legs: no test to report
            return {}
        best = both.best
        out = {"eg_stat": best.statistic, "eg_pvalue": best.p_value,
               "eg_direction": 1.0 if best is both.y_on_x else -1.0,
               "eg_pvalue_y_on_x": both.y_on_x.p_value, "eg_pvalue_x_on_y": both.x_on_y.p_value}  # fmt: skip
        return {k: v for k, v in out.items() if math.isfinite(v)}

    @property
    def last_adf(self) -> ADFResult | None:
        return self._adf

    def needs(self) -> dict[str, int]:
        """More observations each metric needs before it appears (count-based: time windows may need more)."""
        ols = self._ols.needs()
        theil = self._theil.needs() if self._theil is not None else 0
        src = {"ols": ols, "kalman": 0 if self.n else 1, "huber": self._huber.needs(), "theilsen": theil}
        s = src[self.config.beta_source]
        zs = self._z.needs() + (s if self._z.n == 0 else 0)
        out = {
            "ols_beta": ols, "ols_alpha": ols, "ols_r2": ols, "ols_resid_std": ols, "spread_ols": ols,
            "zscore_ols": self._z_ols.needs() + (ols if self._z_ols.n == 0 else 0),
            "kalman_beta": src["kalman"], "kalman_alpha": src["kalman"],
            "huber_beta": src["huber"], "huber_alpha": src["huber"],
            "hedge_beta": s, "spread": s, "fair_value": s, "zscore": zs,
            "corr": self._corr.needs(),
            "half_life": max(0, min(_HALF_LIFE_MIN, self.config.window) - self._z.n) + (s if self._z.n == 0 else 0),
            "adf_pvalue": max(0, MIN_ADF_POINTS - self._z.n) + (s if self._z.n == 0 else 0),
        }  # fmt: skip
        if self._theil is not None:
            out["theilsen_beta"] = out["theilsen_alpha"] = theil
        return out
