"""Per-candle features and per-symbol summaries from candle frames: pure pandas, no Streamlit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def features(candles: pd.DataFrame, window: int = 20) -> pd.DataFrame:
    """One row per candle: OHLCV, return, log return, range, rolling volatility, and taker-buy share."""
    f = candles[["open_time", "open", "high", "low", "close", "volume"]].copy()
    f["return"] = f["close"].pct_change()
    f["log_return"] = np.log(f["close"]).diff()
    f["range_pct"] = (f["high"] - f["low"]) / f["open"] * 100
    f[f"volatility_{window}"] = f["log_return"].rolling(window, min_periods=2).std()
    if "quote_volume" in candles:
        f["vwap"] = candles["quote_volume"] / candles["volume"].where(candles["volume"] > 0)
    if "trades" in candles:
        f["trades"] = candles["trades"]
    if "taker_buy_volume" in candles:
        f["taker_buy_share"] = candles["taker_buy_volume"] / candles["volume"].where(candles["volume"] > 0)
    return f


def summary(candles: pd.DataFrame) -> dict[str, float]:
    """Last price, change over the frame, volatility (std of log returns per candle) and volume."""
    if candles.empty:
        return {}
    close = candles["close"]
    lr = np.log(close).diff().dropna()
    first = float(candles["open"].iloc[0])
    return {
        "last": float(close.iloc[-1]),
        "change_pct": (float(close.iloc[-1]) / first - 1) * 100 if first > 0 else math.nan,
        "volatility_pct": float(lr.std()) * 100 if len(lr) > 1 else math.nan,
        "volume": float(candles["volume"].sum()),
        "candles": float(len(candles)),
    }


def return_correlation(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Correlation of log returns on shared open times; symbols with fewer than 3 returns are left out."""
    cols = {}
    for sym, f in frames.items():
        if len(f) >= 4:
            cols[sym] = np.log(f.set_index("open_time")["close"]).diff()
    if len(cols) < 2:
        return pd.DataFrame()
    return pd.DataFrame(cols).dropna().corr()


# The engine's per-symbol metrics (symbol:stats) and the GARCH fit (symbol:garch), as the Markets table shows
# and exports them: column -> record field.
SYMBOL_METRICS = {
    "price": "price",
    "momentum (bps/min)": "momentum_bps_per_min",
    "price z": "price_z",
    "realised vol (per trade)": "vol",
    "annualised vol": "vol_annualised",
    "GARCH σ now (%/1m)": "garch_sigma_now",
    "GARCH σ next (%/1m)": "garch_sigma_next",
    "GARCH σ next, annualised (%)": "garch_sigma_next_ann",
    "trades in window": "n",
    "GARCH fitted (ms UTC)": "garch_fitted_ms",
}


def _finite(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def symbol_metrics(records: dict[str, dict[str, object]]) -> pd.DataFrame:
    """One row per symbol (in the given order), the SYMBOL_METRICS columns as floats (NaN = not computed yet;
    a field that is not a number reads as NaN rather than failing the page)."""
    rows = [{"symbol": sym, **{col: _finite(rec.get(field)) for col, field in SYMBOL_METRICS.items()}}
            for sym, rec in records.items()]  # fmt: skip
    return pd.DataFrame(rows, columns=["symbol", *SYMBOL_METRICS])
