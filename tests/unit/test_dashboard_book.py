"""The dashboard's top-of-book panel shows the worker's figures (qs_analytics.symbol.book_metrics), not its own."""

from __future__ import annotations

import math

import pytest

from dashboard.components.panels import book_metrics as panel_metrics
from qs_analytics.symbol import book_metrics


@pytest.mark.parametrize(
    ("bid", "bq", "ask", "aq"),
    [("61837.63", "3.0", "61837.64", "1.0"), ("0.00001234", "5e6", "0.00001236", "0"), ("1", "0", "2", "0")],
)
def test_panel_figures_are_the_worker_figures(bid: str, bq: str, ask: str, aq: str) -> None:
    m = panel_metrics({"bid": bid, "bid_qty": bq, "ask": ask, "ask_qty": aq})
    w = book_metrics(bid, bq, ask, aq)
    assert m["mid"] == w.mid and m["spread_bps"] == w.spread_bps
    assert m["imbalance"] == w.imbalance or (math.isnan(m["imbalance"]) and math.isnan(w.imbalance))
    assert m["spread"] == float(ask) - float(bid) and (m["bid"], m["ask_qty"]) == (float(bid), float(aq))
