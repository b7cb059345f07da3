"""Pure frame helpers: joining history with the forming candle, aligning legs, display time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")


def candle_row(candle: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON candle (decimal strings, integer times) as a row of floats with `open_time` int ms."""
    row: dict[str, Any] = {"open_time": int(candle["open_time"])}
    for name in OHLCV:
        row[name] = float(candle.get(name) or 0.0)
    for name in ("quote_volume", "trades", "taker_buy_volume"):
        if candle.get(name) is not None:
            row[name] = float(candle[name])
    return row


def join_candles(
    history: pd.DataFrame, current: Mapping[str, Any] | None, seen: Iterable[Mapping[str, Any]] = ()
) -> pd.DataFrame:
    """History, then candles seen forming earlier where history has no row yet, then the current forming one.

    At the seam the current Redis candle wins (same open_time: it is newer than what the API stored); an
    older candle this session saw forming only fills a hole that history does not cover yet (the worker may
    store a closed candle a moment after the next one starts forming). No open_time appears twice.
    """
    have = set(history["open_time"].tolist()) if not history.empty else set()
    extra = [candle_row(c) for c in seen if int(c["open_time"]) not in have]
    rows = extra[:]
    if current is not None:
        cur = candle_row(current)
        rows = [r for r in rows if r["open_time"] != cur["open_time"]] + [cur]
    if not rows:
        return history.reset_index(drop=True)
    add = pd.DataFrame.from_records(rows)
    add = add.drop_duplicates("open_time", keep="last")
    base = history[~history["open_time"].isin(add["open_time"])] if not history.empty else history
    parts = [p for p in (base, add) if not p.empty]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else add
    out["open_time"] = out["open_time"].astype("int64")
    return out.sort_values("open_time", kind="stable").reset_index(drop=True)


def align_closes(y: pd.DataFrame, x: pd.DataFrame) -> pd.DataFrame:
    """Closes of both legs on the open times they share: columns open_time, y, x."""
    if y.empty or x.empty:
        return pd.DataFrame({"open_time": pd.Series(dtype="int64"), "y": [], "x": []})
    out = y[["open_time", "close"]].merge(x[["open_time", "close"]], on="open_time", suffixes=("_y", "_x"))
    return out.rename(columns={"close_y": "y", "close_x": "x"}).sort_values("open_time").reset_index(drop=True)


def display_time(ms: pd.Series | Iterable[int], tz: str) -> pd.DatetimeIndex:
    """UTC ms to wall-clock times in `tz` for axes and tables; data stays UTC ms everywhere else."""
    idx = pd.to_datetime(pd.Index(ms, dtype="int64"), unit="ms", utc=True)
    return idx.tz_convert(tz)


def fmt_time(ms: int | None, tz: str) -> str:
    if ms is None:
        return "—"
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def fmt_age(age_ms: float | None) -> str:
    if age_ms is None:
        return "—"
    s = age_ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
