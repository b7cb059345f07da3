"""Order-book views: the depth chart (cumulative ladders around the mid), the top levels, the book metrics and
the cost of entering a spread trade by walking both legs' books.

Levels arrive as Binance's exact decimal text; they become floats only here, for drawing. The walk-the-book cost
is the worker's own function (`qs_analytics.book.metrics.market_cost_bps`, exact), run on the levels the book role
publishes (BOOK_LEVELS a side): a notional deeper than those levels has no figure rather than a wrong one.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.components.charts import DOWN, UP
from dashboard.safe import plotly
from qs_analytics.book.book import OrderBook
from qs_analytics.book.metrics import market_cost_bps
from qs_common.depth import DepthSnapshot

Side = Literal["buy", "sell"]


def ladders(book: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bids, asks) as frames of price, qty, cumulative qty and cumulative quote, best level first."""
    out = []
    for side in ("bids", "asks"):
        levels = book.get(side) or []
        price = np.array([float(p) for p, _ in levels], dtype="float64")
        qty = np.array([float(q) for _, q in levels], dtype="float64")
        out.append(pd.DataFrame({"price": price, "qty": qty, "cum_qty": np.cumsum(qty),
                                 "cum_quote": np.cumsum(price * qty)}))
    return out[0], out[1]


def depth_figure(book: dict[str, Any], log_y: bool = False, height: int = 360) -> go.Figure:
    """Cumulative base quantity on each side of the mid: bids to the left, asks to the right."""
    bids, asks = ladders(book)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=bids["price"], y=bids["cum_qty"], name="bids", mode="lines", line={"shape": "hv",
                             "color": UP}, fill="tozeroy"))
    fig.add_trace(go.Scatter(x=asks["price"], y=asks["cum_qty"], name="asks", mode="lines", line={"shape": "vh",
                             "color": DOWN}, fill="tozeroy"))
    shapes = []
    if len(bids) and len(asks):
        mid = (bids["price"].iloc[0] + asks["price"].iloc[0]) / 2
        shapes.append({"type": "line", "x0": mid, "x1": mid, "yref": "paper", "y0": 0, "y1": 1,
                       "line": {"dash": "dot", "color": "#888"}})
    title = f"{book.get('symbol', '')} depth ({len(bids)} bid and {len(asks)} ask levels)"
    fig.update_layout(
        title={"text": plotly(title)}, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, shapes=shapes,
        hovermode="x", dragmode="pan", xaxis={"title": {"text": "price"}},
        yaxis={"title": {"text": "cumulative quantity"}, "type": "log" if log_y else "linear"},
    )
    return fig


def levels_table(book: dict[str, Any], n: int = 10) -> pd.DataFrame:
    """The best n levels side by side, as the exact text the exchange sent."""
    bids, asks = (book.get("bids") or [])[:n], (book.get("asks") or [])[:n]
    rows = max(len(bids), len(asks))
    pad = [["", ""]] * rows
    b, a = (bids + pad)[:rows], (asks + pad)[:rows]
    return pd.DataFrame({"bid qty": [q for _, q in b], "bid": [p for p, _ in b],
                         "ask": [p for p, _ in a], "ask qty": [q for _, q in a]})


METRIC_LABELS = {
    "mid": "mid", "microprice": "microprice", "spread_bps": "spread (bps)",
    "imbalance_1": "imbalance, 1 level", "imbalance_5": "imbalance, 5 levels", "imbalance_10": "imbalance, 10 levels",
}


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Every numeric metric the book role published, labelled, in a stable order."""
    rows = []
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or name in ("last_update_id", "event_time"):
            continue
        rows.append({"metric": METRIC_LABELS.get(name, name.replace("_", " ")), "value": float(value)})
    return pd.DataFrame(rows, columns=["metric", "value"])


def _book(book: dict[str, Any]) -> OrderBook:
    ob = OrderBook(str(book.get("symbol", "")))
    ob.load(DepthSnapshot(ob.symbol, int(book.get("last_update_id") or 0),
                          tuple((p, q) for p, q in book.get("bids") or []),
                          tuple((p, q) for p, q in book.get("asks") or [])))
    return ob


def cost_bps(book: dict[str, Any], side: Side, notional: float) -> float | None:
    """Walk-the-book cost in bps against the mid of a market order of `notional` quote; None beyond the levels."""
    return market_cost_bps(_book(book), side, str(notional))


def spread_entry_cost(y_book: dict[str, Any], x_book: dict[str, Any], notional: float) -> pd.DataFrame:
    """Entering the spread at `notional` quote per leg, both ways: long the spread buys Y and sells X, short
    the spread sells Y and buys X. Costs in bps of each leg's notional; the total is their sum (bps of one
    leg's notional, i.e. the round-trip entry cost of the pair position)."""
    rows = []
    for name, y_side, x_side in (("long spread (buy Y, sell X)", "buy", "sell"),
                                 ("short spread (sell Y, buy X)", "sell", "buy")):
        y_cost = cost_bps(y_book, y_side, notional)  # type: ignore[arg-type]
        x_cost = cost_bps(x_book, x_side, notional)  # type: ignore[arg-type]
        total = None if y_cost is None or x_cost is None else y_cost + x_cost
        rows.append({"entry": name, "Y leg (bps)": y_cost, "X leg (bps)": x_cost, "both legs (bps)": total})
    return pd.DataFrame(rows)
