"""Plotly figures built from given frames (zoom, pan and hover come with Plotly).

Built as plain dicts with axis domains rather than `make_subplots`, and with times as wall-clock strings in
the display zone: both cut the server time of a chart several-fold (validation of tz-aware timestamps and the
subplot machinery dominate otherwise), which matters for the live fragment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

CONFIG = {"scrollZoom": True, "displaylogo": False}
UP, DOWN = "#26a69a", "#ef5350"


def axis_times(ms: pd.Series, tz: str) -> list[str]:
    """UTC ms as wall-clock text in `tz` ("2024-08-08 23:59:00.000"), which Plotly reads as dates."""
    local = pd.to_datetime(ms.to_numpy(dtype="int64"), unit="ms", utc=True).tz_convert(tz).tz_localize(None)
    text = np.datetime_as_string(local.to_numpy(dtype="datetime64[ms]"), unit="ms")
    return np.char.replace(text, "T", " ").tolist()


def _layout(title: str, height: int, tz: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hovermode": "x unified",
        "dragmode": "pan",
        "xaxis": {"type": "date", "title": {"text": f"time ({tz})"}, "rangeslider": {"visible": False}},
        **extra,
    }


def _arr(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype="float64")


def candles(frame: pd.DataFrame, symbol: str, tz: str, height: int = 420) -> go.Figure:
    """Candlesticks over volume bars; the last candle may still be forming."""
    t = axis_times(frame["open_time"], tz)
    colours = np.where(frame["close"].to_numpy() >= frame["open"].to_numpy(), UP, DOWN).tolist()
    data = [
        {
            "type": "candlestick",
            "x": t,
            "open": _arr(frame["open"]),
            "high": _arr(frame["high"]),
            "low": _arr(frame["low"]),
            "close": _arr(frame["close"]),
            "name": symbol,
            "yaxis": "y",
        },
        {
            "type": "bar",
            "x": t,
            "y": _arr(frame["volume"]),
            "marker": {"color": colours},
            "opacity": 0.6,
            "name": "volume",
            "yaxis": "y2",
        },
    ]
    layout = _layout(
        symbol,
        height,
        tz,
        showlegend=False,
        yaxis={"domain": [0.28, 1.0]},
        yaxis2={"domain": [0.0, 0.22], "title": {"text": "volume"}},
    )
    layout["xaxis"]["anchor"] = "y2"  # the time axis under the volume bars, not between the panes
    return go.Figure({"data": data, "layout": layout})


def legs(calc: pd.DataFrame, y: str, x: str, tz: str) -> go.Figure:
    """Both legs' prices (y left, x right) and y's fair value from the chosen regression."""
    t = axis_times(calc["open_time"], tz)
    data = [
        {"type": "scatter", "x": t, "y": _arr(calc["y"]), "name": y, "line": {"width": 1.5}},
        {"type": "scatter", "x": t, "y": _arr(calc["fair"]), "name": f"fair value of {y}", "line": {"dash": "dot"}},
        {
            "type": "scatter",
            "x": t,
            "y": _arr(calc["x"]),
            "name": x,
            "yaxis": "y2",
            "line": {"width": 1, "color": "#999"},
        },
    ]
    layout = _layout(
        "Prices and fair value",
        320,
        tz,
        yaxis={"title": {"text": y}},
        legend={"x": 1.08},
        yaxis2={"title": {"text": x}, "overlaying": "y", "side": "right"},
    )
    return go.Figure({"data": data, "layout": layout})


def _hline(y: float, colour: str, yref: str, dash: str = "dash") -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": yref,
        "y0": y,
        "y1": y,
        "line": {"color": colour, "width": 1, "dash": dash},
    }


def spread_z(
    calc: pd.DataFrame, tz: str, z_exit: float, z_entry: float, alerts: pd.DataFrame | None = None,
    title: str = "Spread and z-score",
) -> go.Figure:
    """Spread (top) and z-score with ± exit and entry bands (bottom); fired alerts as markers."""
    t = axis_times(calc["open_time"], tz)
    data = [
        {"type": "scatter", "x": t, "y": _arr(calc["spread"]), "name": "spread", "yaxis": "y2", "line": {"width": 1.2}},
        {"type": "scatter", "x": t, "y": _arr(calc["zscore"]), "name": "z", "line": {"width": 1.2, "color": "#636efa"}},
    ]
    shapes = [_hline(s * lvl, col, "y") for lvl, col in ((z_entry, DOWN), (z_exit, "#ffa15a")) for s in (1, -1)]
    shapes.append(_hline(0.0, "#888", "y", "solid"))
    if alerts is not None and not alerts.empty:
        data.append(
            {
                "type": "scatter",
                "x": axis_times(alerts["ts"], tz),
                "y": _arr(alerts["value"]),
                "mode": "markers",
                "name": "alert",
                "text": alerts["metric"].astype(str).tolist(),
                "marker": {"symbol": "triangle-up", "size": 11, "color": "#d62728"},
            }
        )
    layout = _layout(
        title,
        420,
        tz,
        shapes=shapes,
        yaxis={"domain": [0.0, 0.46], "title": {"text": "z"}},
        yaxis2={"domain": [0.54, 1.0], "title": {"text": "spread"}},
    )
    return go.Figure({"data": data, "layout": layout})


def lines(frame: pd.DataFrame, columns: list[str], tz: str, title: str, height: int = 280) -> go.Figure:
    """One line per column against `ts` (ms) or `open_time`."""
    t = axis_times(frame["ts" if "ts" in frame else "open_time"], tz)
    data = [{"type": "scatter", "x": t, "y": _arr(frame[c]), "name": c, "line": {"width": 1.2}} for c in columns]
    return go.Figure({"data": data, "layout": _layout(title, height, tz)})


def heatmap(matrix: pd.DataFrame, title: str) -> go.Figure:
    z = matrix.to_numpy()
    data = [
        {
            "type": "heatmap",
            "z": z,
            "x": list(matrix.columns),
            "y": list(matrix.index),
            "zmin": -1,
            "zmax": 1,
            "colorscale": "RdBu",
            "text": np.round(z, 3),
            "texttemplate": "%{text}",
        }
    ]
    layout = {"title": {"text": title}, "height": 380, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
    return go.Figure({"data": data, "layout": layout})
