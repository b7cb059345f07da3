"""What the live page says about the worker's engine for a pair: its settings as the entries state them, its z
series, and where the pair's alerts sit on that series. Plain functions over frames and dicts (no Streamlit).

The headline z, the z chart and the alert markers are one series, the engine's `zscore` from
`stream:analytics`: alerts fire on it, so they are drawn on it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dashboard.control_api import REGRESSION_OF
from qs_common.control import PairSettings


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return int(v) if math.isfinite(v) else None


def engine_settings(entry: dict[str, Any] | None) -> dict[str, Any]:
    """The settings an analytics entry says it was computed with (`window`, `beta_source`, `price_source`);
    fields an older worker does not write are absent."""
    if not entry:
        return {}
    out: dict[str, Any] = {}
    window = _int(entry.get("window"))
    if window is not None:
        out["window"] = window
    for name in ("beta_source", "price_source"):
        text = _text(entry.get(name))
        if text is not None:
            out[name] = text
    return out


def describe(window: int, beta_source: str, price_source: str) -> str:
    return f"window {window}, β source {REGRESSION_OF.get(beta_source, beta_source)}, {price_source} prices"


def engine_label(entry: dict[str, Any] | None, ps: PairSettings) -> str:
    """"engine, tick level, window N, β source ..." from the entry itself; a field the entry lacks is the
    registry's, marked as configured (the engine has not said it)."""
    got = engine_settings(entry)
    if {"window", "beta_source", "price_source"} <= got.keys():
        return "engine, tick level, " + describe(got["window"], got["beta_source"], got["price_source"])
    return "engine, tick level, configured " + describe(ps.window, ps.beta_source, ps.price_source)


def switching(entry: dict[str, Any] | None, ps: PairSettings) -> bool:
    """True while the newest entry was computed with other settings than the registry's (the engine has not
    picked the change up yet, or its legs have not ticked since)."""
    got = engine_settings(entry)
    return any(got[k] != getattr(ps, k) for k in got)


def candle_label(interval: str, ps: PairSettings) -> str:
    return f"candle level, {interval} closes, " + describe(ps.window, ps.beta_source, "close")


def z_series(rows: pd.DataFrame, last: int = 3_000) -> pd.DataFrame:
    """The engine's spread and z (columns open_time, spread, zscore), the newest `last` entries that have a z."""
    if rows.empty or "zscore" not in rows:
        return pd.DataFrame(columns=["open_time", "spread", "zscore"])
    z = rows[rows["zscore"].notna()].iloc[-last:]
    spread = z["spread"] if "spread" in z else pd.Series(float("nan"), index=z.index)
    return pd.DataFrame({"open_time": z["ts"].astype("int64"), "spread": spread, "zscore": z["zscore"]})


def alert_markers(alerts: pd.DataFrame, pair: str, z: pd.DataFrame) -> pd.DataFrame | None:
    """The pair's alerts within the z series' time range, each at the engine's z: a z alert at its own value
    (the engine's z when it fired), any other metric's at the z as of its time."""
    if alerts.empty or z.empty or "pair" not in alerts:
        return None
    first, last = int(z["open_time"].iloc[0]), int(z["open_time"].iloc[-1])
    mine = alerts[(alerts["pair"] == pair) & (alerts["ts"] >= first) & (alerts["ts"] <= last)]
    if mine.empty:
        return None
    mine = mine.sort_values("ts")[["ts", "metric", "value"]].astype({"ts": "int64"})
    asof = pd.merge_asof(mine, z[["open_time", "zscore"]].rename(columns={"open_time": "ts"}), on="ts")
    is_z = asof["metric"].astype(str) == "zscore"
    asof["value"] = asof["value"].where(is_z, asof["zscore"])
    return asof[["ts", "metric", "value"]].dropna()
