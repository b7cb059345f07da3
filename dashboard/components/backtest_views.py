"""Drawing and input parsing for the Backtest page: uploaded rows, metrics, equity, trades, the sweep heatmap."""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.components import charts
from dashboard.safe import md
from qs_common.times import epoch_to_ms

MAX_UPLOAD_ROWS = 200_000


def parse_rows(text: str) -> list[list[float]]:
    """An uploaded `time,x,y` CSV (close prices > 0) as rows; ValueError naming the row (1 = first data row)
    and column."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"not a CSV file: {str(exc)[:100]}") from None
    cols = [c.strip().lower() for c in frame.columns]
    missing = [c for c in ("time", "x", "y") if c not in cols]
    if missing:
        raise ValueError(f"header: missing column(s) {', '.join(missing)}; need time,x,y")
    frame.columns = cols
    if len(frame) > MAX_UPLOAD_ROWS:
        raise ValueError(f"body: {len(frame)} rows, at most {MAX_UPLOAD_ROWS}")
    out = []
    for i, (t, x, y) in enumerate(zip(frame["time"], frame["x"], frame["y"], strict=True), start=1):
        row = []
        for name, v in (("time", t), ("x", x), ("y", y)):
            try:
                f = float(v)
            except ValueError:
                raise ValueError(f"row {i}, column {name}: {v[:40]!r} is not a number") from None
            if not math.isfinite(f) or (name != "time" and f <= 0):
                raise ValueError(f"row {i}, column {name}: {v[:40]!r} must be a finite number" +
                                 (" > 0" if name != "time" else ""))  # fmt: skip
            row.append(f)
        out.append(row)
    if not out:
        raise ValueError("body: no data rows")
    return out


def times_ms(times: list[float]) -> pd.Series:
    """Row times as ms (an epoch number in s, ms, µs or ns, told apart by size)."""
    return pd.Series([epoch_to_ms(int(t)) for t in times], dtype="int64")


def metrics(summary: dict[str, Any], notional: float) -> None:
    ppy = summary.get("periods_per_year")
    cols = st.columns(6)

    def val(k: str, spec: str) -> str:
        v = summary.get(k)
        return "—" if v is None else format(v, spec)

    cols[0].metric("Total return", val("total_return", ".3%"), help=f"final equity / notional {notional:,.0f}")
    cols[1].metric("Sharpe (annualised)", val("sharpe", ".2f"))
    cols[2].metric("Sortino (annualised)", val("sortino", ".2f"))
    cols[3].metric("Max drawdown", val("max_drawdown", ".3%"))
    cols[4].metric("Hit rate", val("hit_rate", ".1%"))
    cols[5].metric("Trades", summary.get("n_trades", 0), help="closed trades; a trade open at the end is not counted")
    cols = st.columns(6)
    cols[0].metric("Average trade", val("avg_trade", ",.2f"))
    cols[1].metric("Turnover (× notional)", val("turnover", ".2f"))
    cols[2].metric("Exposure", val("exposure", ".1%"))
    cols[3].metric("Final equity", val("final_equity", ",.2f"))
    cols[4].metric("Open at the end", "yes" if summary.get("open_at_end") else "no")
    cols[5].metric("Periods per year", "—" if ppy is None else f"{ppy:,.0f}")
    st.caption(md(f"Sharpe and Sortino are annualised with {'—' if ppy is None else f'{ppy:,.0f}'} periods per year "
                  "(365.25 days around the clock / the median row step); returns are equity changes / notional."))


def equity_chart(result: dict[str, Any], tz: str) -> go.Figure:
    eq = pd.DataFrame({"open_time": times_ms(result["equity"]["time"]), "equity": result["equity"]["equity"]})
    return charts.lines(eq, ["equity"], tz, "Equity (net of costs, marked to market)", 300)


def trades_frame(result: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(result["trades"], columns=[
        "entry_row", "exit_row", "entry_time", "exit_time", "side", "qty_y", "qty_x", "entry_y", "entry_x", "exit_y",
        "exit_x", "gross_pnl", "costs", "net_pnl", "holding_rows", "exit_reason"])  # fmt: skip


def sweep_heatmap(sweep: dict[str, Any]) -> go.Figure:
    metric = sweep["metric"]
    z = [[cell.get(metric) for cell in line] for line in sweep["grid"]]
    best = sweep["best_in_sample"]
    xs, ys = [str(e) for e in sweep["entries"]], [str(w) for w in sweep["windows"]]
    data = [{"type": "heatmap", "z": z, "x": xs, "y": ys,
             "colorscale": "RdYlGn", "texttemplate": "%{z:.2f}", "colorbar": {"title": {"text": metric}}},
            {"type": "scatter", "mode": "markers+text", "x": [str(best["entry"])], "y": [str(best["window"])],
             "text": ["in-sample best"], "textposition": "top center", "showlegend": False,
             "marker": {"symbol": "star", "size": 16, "color": "black"}}]  # fmt: skip
    layout = {"title": {"text": f"{metric} by entry × window, in-sample rows 0..{sweep['split_row'] - 1} only"},
              "height": 380, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
              "xaxis": {"title": {"text": "entry |z|"}, "type": "category"},
              "yaxis": {"title": {"text": "window (rows)"}, "type": "category"}}  # fmt: skip
    return go.Figure({"data": data, "layout": layout})


def sweep_frame(sweep: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for w, line in zip(sweep["windows"], sweep["grid"], strict=True):
        for e, cell in zip(sweep["entries"], line, strict=True):
            rows.append({"window": w, "entry": e, "in_sample": True, **cell})
    return pd.DataFrame(rows)


def walk_forward_frame(wf: dict[str, Any]) -> pd.DataFrame:
    keys = ("total_return", "sharpe", "sortino", "max_drawdown", "hit_rate", "n_trades", "periods_per_year")
    return pd.DataFrame([{"part": f"in-sample (rows < {wf['split_row']}; chosen here, optimistic)",
                          **{k: wf["in_sample"].get(k) for k in keys}},
                         {"part": f"out-of-sample (rows ≥ {wf['split_row']})",
                          **{k: wf["out_of_sample"].get(k) for k in keys}}])  # fmt: skip
