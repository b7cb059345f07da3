"""Backtest of the z-score pair strategy (issue 9 §3 rules) on stored candles, an uploaded CSV or a scan row:
metrics, equity, trades, the entry × window sweep (in-sample) and a walk-forward split. Run by the worker
(`POST /research/backtest`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.components import backtest_views as bv
from dashboard.components import charts, notices
from dashboard.components.backtest_costs import parse_spreads
from dashboard.frames import fmt_time
from dashboard.safe import csv_text, filename, md
from dashboard.sidebar import Controls
from qs_common import intervals

c: Controls = st.session_state["_controls"]
INTERVALS = intervals.RESEARCH_INTERVALS
BETA_SOURCES = {"rolling OLS": "ols", "Kalman filter": "kalman", "rolling Huber": "huber"}
BETA_LABELS = {v: k for k, v in BETA_SOURCES.items()}
st.title("Backtest · z-score pair strategy")
st.markdown(
    "At each row β, α (rolling OLS, Kalman or rolling Huber) and the spread's z over window N are computed "
    "from past rows only; a decision at a "
    "row's close is filled at the next row's prices. Open SHORT spread when z ≥ entry, LONG when z ≤ −entry; "
    "exit a LONG when z ≥ −exit, a SHORT when z ≤ exit; optional stop |z| ≥ S and maximum holding time. "
    "Dollar-neutral on the notional: q = notional / y, the x leg −β·q. Costs: (fee + slippage) bps per leg and "
    "fill, plus half the quoted spread at the fill row where an uploaded file carries it."
)

sent: dict[str, Any] | None = st.session_state.get("backtest_pair")
try:
    symbols = sorted(set(data.stored_symbols()) | set(c.symbols))
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()

kinds = ("Stored candles", "Uploaded CSV (time,x,y)")
kind = st.radio("Prices", kinds, horizontal=True, key="bt_kind")
source: dict[str, Any] | None = None
label = ""
if kind == kinds[0]:
    if sent is not None:
        st.info(md(f"From scan {sent['from_scan']}: {sent['y']}/{sent['x']}, {sent['interval']} candles "
                   f"(scan half-life {sent['half_life']:.1f} candles)."))  # fmt: skip
    s1, s2, s3, s4 = st.columns(4)
    y_default = sent["y"] if sent else c.y
    x_default = sent["x"] if sent else c.x
    y = s1.selectbox("y (dependent leg)", symbols, index=symbols.index(y_default) if y_default in symbols else 0,
                     key="bt_y")  # fmt: skip
    x = s2.selectbox("x (hedge leg)", symbols, index=symbols.index(x_default) if x_default in symbols else 0,
                     key="bt_x")  # fmt: skip
    iv = sent["interval"] if sent else c.interval
    interval = s3.selectbox("Interval", INTERVALS, index=INTERVALS.index(iv) if iv in INTERVALS else 1, key="bt_iv")
    limit = s4.number_input("Candles (newest)", 100, 200_000, int(sent["limit"]) if sent else 1440, step=100,
                            key="bt_limit")  # fmt: skip
    if y == x:
        st.warning("Pick two different symbols.")
    else:
        source = {"kind": "candles", "y": y, "x": x, "interval": interval, "limit": int(limit)}
        label = f"{y}-{x}-{interval}"
else:
    up = st.file_uploader("CSV with header time,x,y (close prices > 0; time in s, ms, µs or ns); optional "
                          "spread_bps_x, spread_bps_y (quoted spread in bps: half is added to a fill's cost)",
                          type=["csv"], key="bt_upload")  # fmt: skip
    if up is not None:
        try:
            text = up.getvalue().decode("utf-8", errors="replace")
            rows = bv.parse_rows(text)
            spreads = parse_spreads(text)
            source = {"kind": "rows", "rows": rows, **spreads}
            label = filename(up.name.rsplit(".", 1)[0])
            st.caption(md(f"{len(rows)} rows read from {up.name}"
                          + (f"; half the quoted spread ({', '.join(spreads)}) is added to each fill's cost"
                             if spreads else "")))  # fmt: skip
        except ValueError as exc:
            st.error(md(f"{up.name}: {exc}"))

with st.form("bt_form"):
    p1, p2, p3, p4 = st.columns(4)
    window = p1.number_input("Window N (rows)", 2, 100_000, 60, key="bt_window")
    entry = p2.number_input("Entry |z| ≥", 0.0, 20.0, 2.0, step=0.25, key="bt_entry")
    exit_ = p3.number_input("Exit (LONG at z ≥ −X, SHORT at z ≤ X)", -20.0, 20.0, 0.5, step=0.25, key="bt_exit")
    stop = p4.number_input("Stop |z| ≥ (0 = none)", 0.0, 50.0, 0.0, step=0.5, key="bt_stop")
    q1, q2, q3, q4 = st.columns(4)
    max_hold = q1.number_input("Max hold (rows, 0 = none)", 0, 1_000_000, 0, key="bt_max_hold")
    fee = q2.number_input("Fee (bps per leg and fill)", -10.0, 100.0, 1.0, step=0.5, key="bt_fee")
    slip = q3.number_input("Slippage (bps per leg and fill)", -10.0, 100.0, 1.0, step=0.5, key="bt_slip")
    notional = q4.number_input("Notional", 1.0, 1e12, 10_000.0, step=1000.0, key="bt_notional")
    b1, b2 = st.columns([3, 1])
    beta_label = b1.selectbox("β source", tuple(BETA_SOURCES), key="bt_beta",
                              help="Rolling OLS is the batch command's β and z (the contract). Kalman: the filter's "
                                   "state after each row (the live engine's δ, R). Huber: a robust fit over the "
                                   "window, refitted every K rows. z: the spread's rolling z over N rows.")  # fmt: skip
    huber_every = b2.number_input("Huber refit every K rows", 1, 10_000, 1, key="bt_huber_every",
                                  help="1 refits at every row (exact, slowest: a few ms a refit)")  # fmt: skip
    w1, w2, w3 = st.columns(3)
    entries_text = w1.text_input("Sweep: entries", "1.5, 2, 2.5", key="bt_sweep_entries")
    windows_text = w2.text_input("Sweep: windows", "30, 60, 120", key="bt_sweep_windows")
    split = w3.slider("Walk-forward: in-sample share", 0.2, 0.8, 0.5, 0.05, key="bt_split")
    go_run = st.form_submit_button("Run backtest", type="primary")

if go_run and source is not None:
    try:
        entries = [float(v) for v in entries_text.replace(";", ",").split(",") if v.strip()]
        windows = [int(v) for v in windows_text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        st.error("Sweep: entries are numbers and windows whole numbers, separated by commas.")
        st.stop()
    request = {
        "params": {"window": int(window), "entry": float(entry), "exit": float(exit_),
                   "stop": float(stop) if stop > 0 else None, "max_hold": int(max_hold) if max_hold > 0 else None,
                   "fee_bps": float(fee), "slippage_bps": float(slip), "notional": float(notional),
                   "beta_source": BETA_SOURCES[beta_label], "huber_every": int(huber_every)},
        "source": source,
        "sweep": {"entries": entries, "windows": windows, "split": float(split)} if entries and windows else None,
    }  # fmt: skip
    with st.spinner("Backtesting…"):
        try:
            st.session_state["bt_result"] = (data.run_backtest(request), label)
        except data.Unavailable as exc:
            notices.unavailable(str(exc))
            st.stop()
elif go_run:
    st.warning("Choose the prices first.")

stored_result = st.session_state.get("bt_result")
if stored_result is None:
    st.caption("Set the parameters and press **Run backtest**.")
    st.stop()
res, label = stored_result
p = res["params"]
st.subheader(md(f"{label}: {res['rows']} rows"))
st.caption(md(f"window {p['window']}, entry {p['entry']}, exit {p['exit']}, stop {p['stop'] or 'none'}, "
              f"max hold {p['max_hold'] or 'none'}, fee {p['fee_bps']} + slippage {p['slippage_bps']} bps, "
              f"notional {p['notional']:,.0f} · β {BETA_LABELS.get(p.get('beta_source'), 'rolling OLS')}"))  # fmt: skip
bv.metrics(res["summary"], float(p["notional"]))
st.plotly_chart(bv.equity_chart(res, c.tz), config=charts.CONFIG, key="bt_equity")
trades = bv.trades_frame(res)
if res.get("open_position"):
    op = res["open_position"]
    st.caption(md(f"A {op['side']} position filled at row {op['entry_row']} is still open at the end (in the "
                  "equity, not in the trades)."))  # fmt: skip
st.subheader(f"Trades ({len(trades)})")
st.dataframe(trades, hide_index=True, height=260)
eq = bv.times_ms(res["equity"]["time"])
equity_frame = {"time": res["equity"]["time"], "time_utc": [fmt_time(int(t), "UTC") for t in eq],
                "equity": res["equity"]["equity"]}
d1, d2, d3 = st.columns(3)
d1.download_button("Download trades (CSV)", csv_text(trades), filename(f"{label}-trades.csv"), "text/csv",
                   key="dl_bt_trades")  # fmt: skip
d2.download_button("Download equity (CSV)", csv_text(pd.DataFrame(equity_frame)), filename(f"{label}-equity.csv"),
                   "text/csv", key="dl_bt_equity")  # fmt: skip
if res.get("sweep"):
    sw = res["sweep"]
    d3.download_button("Download sweep (CSV, in-sample)", csv_text(bv.sweep_frame(sw)),
                       filename(f"{label}-sweep.csv"), "text/csv", key="dl_bt_sweep")  # fmt: skip
    st.subheader("Parameter sweep (in-sample)")
    st.plotly_chart(bv.sweep_heatmap(sw), config=charts.CONFIG, key="bt_sweep")
    best = sw["best_in_sample"]
    st.caption(md(f"The star marks the in-sample best by {sw['metric']} (window {best['window']}, entry "
                  f"{best['entry']}): chosen on these rows, so its figure is optimistic. The walk-forward below "
                  "trades it on the rows after the split."))  # fmt: skip
    wf = res["walk_forward"]
    st.subheader("Walk-forward")
    st.caption(md(f"Fitted (chosen) on rows 0..{wf['split_row'] - 1}, reported on rows {wf['split_row']}.. "
                  f"(from {fmt_time(int(bv.times_ms([wf['split_time']]).iloc[0]), c.tz)})"))  # fmt: skip
    st.dataframe(bv.walk_forward_frame(wf), hide_index=True)
