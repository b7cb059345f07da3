"""Pure pair and symbol analytics: values in, values out; no Redis, DuckDB, asyncio or clock.

Names are imported lazily so that a light user (the dashboard parsing alert rules) does not pay for
scikit-learn and statsmodels at import time.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RollingMoments": "moments", "RollingCoMoments": "moments",
    "RollingOLS": "ols", "OLSFit": "ols",
    "KalmanHedge": "kalman", "KalmanResult": "kalman", "kalman_filter_batch": "kalman",
    "HuberFairValue": "robust", "TheilSenFairValue": "robust", "FairValueFit": "robust",
    "SpreadZScore": "spread", "ZScore": "spread", "RollingCorrelation": "spread", "spread": "spread",
    "adf_test": "stationarity", "ADFResult": "stationarity", "half_life": "stationarity", "HalfLife": "stationarity",
    "SymbolStats": "symbol", "SymbolSnapshot": "symbol", "book_metrics": "symbol", "BookMetrics": "symbol",
    "PairAligner": "align", "PairObservation": "align",
    "PairEngine": "engine", "PairConfig": "engine",
    "AlertRule": "alerts", "AlertEvaluator": "alerts", "FiredAlert": "alerts", "parse_expression": "alerts",
    "METRIC_NAMES": "names",
    "BacktestParams": "backtest", "run_backtest": "backtest", "Trade": "backtest",
    "summarize": "backtest_metrics", "sweep": "backtest_metrics", "walk_forward": "backtest_metrics",
    "engle_granger": "coint", "engle_granger_both": "coint", "EngleGranger": "coint",
    "johansen": "johansen", "Johansen": "johansen",
    "hurst": "meanrev", "variance_ratio": "meanrev", "VarianceRatio": "meanrev",
    "lead_lag": "leadlag", "LeadLag": "leadlag",
    "scan_pairs": "scanner", "filter_and_rank": "scanner", "ScanFilter": "scanner",
    "fit_garch": "garch", "GarchFit": "garch",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'worker.analytics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"worker.analytics.{mod}"), name)
