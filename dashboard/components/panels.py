"""Numbers: top of book, the pair's stats panel, key live metrics."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from dashboard.frames import fmt_time
from qs_analytics.symbol import book_metrics as top_of_book


def _num(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}" if abs(v) < 1e6 else f"{v:,.0f}"


def book_metrics(book: dict[str, Any]) -> dict[str, float]:
    """Quoted spread (abs, bps of mid), mid and imbalance (bid size share of both sizes, −1..1): the worker's
    definitions (qs_analytics.symbol.book_metrics), plus the quotes as floats for display."""
    bid, ask = float(book["bid"]), float(book["ask"])
    bq, aq = float(book["bid_qty"]), float(book["ask_qty"])
    m = top_of_book(bid, bq, ask, aq)
    return {
        "bid": bid,
        "ask": ask,
        "bid_qty": bq,
        "ask_qty": aq,
        "mid": m.mid,
        "spread": ask - bid,
        "spread_bps": m.spread_bps,
        "imbalance": m.imbalance,
    }


def book(symbol: str, raw: dict[str, Any] | None, tz: str) -> None:
    """One row: bid, ask, sizes, quoted spread and imbalance of one symbol."""
    if raw is None:
        st.caption(f"{symbol}: no top of book yet (the worker writes it from the book ticker).")
        return
    try:
        m = book_metrics(raw)
    except (KeyError, TypeError, ValueError):
        st.caption(f"{symbol}: the top of book record is malformed.")
        return
    cols = st.columns([1.3, 1.3, 1, 1, 1.2, 1])
    cols[0].metric(f"{symbol} bid", _num(m["bid"], 2))
    cols[1].metric(f"{symbol} ask", _num(m["ask"], 2))
    cols[2].metric("Bid size", _num(m["bid_qty"], 4))
    cols[3].metric("Ask size", _num(m["ask_qty"], 4))
    cols[4].metric("Quoted spread", _num(m["spread"], 2), f"{_num(m['spread_bps'], 2)} bps", delta_color="off")
    cols[5].metric("Imbalance", _num(m["imbalance"], 3), help="(bid size − ask size) / (bid size + ask size)")
    ts = raw.get("ts")
    if ts:
        st.caption(f"{symbol} top of book as of {fmt_time(int(ts), tz)}")


def stats(
    engine: dict[str, Any] | None, calc: dict[str, float] | None, labels: tuple[str, str], adf: str | None, tz: str
) -> None:
    """β, α, R², z, half-life and the last ADF verdict: the worker's engine (tick level) and the candle-level
    view on the same settings; `labels` say which is which (settings included)."""
    st.markdown("**Stats**")
    rows = []
    if engine:
        half = engine.get("half_life")
        rows.append(
            {
                "source": labels[0],
                "β": _num(engine.get("hedge_beta", engine.get("ols_beta")), 5),
                "α": _num(engine.get("hedge_alpha", engine.get("ols_alpha")), 3),
                "R² (OLS)": _num(engine.get("ols_r2"), 4),
                "z": _num(engine.get("zscore"), 3),
                "half-life": _num(half, 1),
                "as of": fmt_time(engine.get("ts"), tz),
            }
        )
    if calc:
        rows.append(
            {
                "source": labels[1],
                "β": _num(calc.get("beta"), 5),
                "α": _num(calc.get("alpha"), 3),
                "R² (OLS)": "—",
                "z": _num(calc.get("zscore"), 3),
                "half-life": _num(calc.get("half_life"), 1),
                "as of": fmt_time(int(calc["open_time"]) if "open_time" in calc else None, tz),
            }
        )
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No analytics yet.")
    st.caption(f"Last ADF verdict: {adf}" if adf else "Last ADF verdict: not run yet (see the ADF test page).")
