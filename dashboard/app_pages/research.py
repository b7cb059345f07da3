"""Pair research: the worker's pair scan (run it, filter, rank, download), Johansen for a basket, and the
chosen pair's mean-reversion diagnostics and lead-lag. A row goes to the Backtest page in one click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import control_api, data
from dashboard.components import notices, research_views
from dashboard.frames import fmt_time
from dashboard.safe import csv_text, filename, md
from dashboard.sidebar import Controls
from qs_analytics.scanner import ScanFilter, filter_and_rank
from qs_common import intervals

c: Controls = st.session_state["_controls"]
BACKTEST_PAGE = Path(__file__).parent / "backtest.py"
LIVE_PAGE = Path(__file__).parent / "live_pair.py"
INTERVALS = intervals.RESEARCH_INTERVALS

st.title("Pair research")
st.markdown(
    "Every pair of the chosen symbols, tested for cointegration with the **Engle–Granger** two-step test "
    "(both directions, MacKinnon's residual-based p-values: the β is estimated, so plain ADF critical values "
    "would be too lenient). The worker runs the scan on a schedule over stored candles; run it here on demand."
)


def send_to_live_monitor(y: str, x: str) -> None:
    """Start watching Y/X live: `POST /pairs` with the deployment's default engine settings. A button callback
    (it runs before the sidebar), so the sidebar can select the new pair; the page then opens the live page, or
    shows the API's refusal as text."""
    try:
        if f"{y}/{x}" not in control_api.registry().pairs:  # a pair already watched keeps its settings
            control_api.add_pair(y, x)
    except (control_api.Refused, data.Unavailable) as exc:
        st.session_state["_to_live_error"] = f"{y}/{x} could not be added to the live monitor: {exc}"
        return
    st.session_state["pair"] = f"{y}/{x}"
    st.session_state["_to_live"] = True


# ---- run a scan ------------------------------------------------------------------------------------------
try:
    stored = data.stored_symbols()
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
choices = sorted(set(stored) | set(c.symbols))
with st.form("scan_form"):
    f1, f2, f3 = st.columns([3, 1, 1])
    symbols = f1.multiselect("Symbols (2 to 100)", choices, default=[s for s in choices if s in stored][:100],
                             key="scan_symbols")  # fmt: skip
    interval = f2.selectbox("Interval", INTERVALS, key="scan_interval")
    lookback = f3.number_input("Look-back (candles)", 50, 100_000, 1440, step=60, key="scan_lookback")
    run_now = st.form_submit_button("Run scan now", type="primary")
if run_now:
    with st.spinner("Scanning every pair…"):
        try:
            new = data.run_scan(list(symbols), str(interval), int(lookback))
            st.session_state["scan_run_id"] = str(new["run_id"])
        except data.Unavailable as exc:
            notices.unavailable(str(exc))

try:
    runs = data.scan_runs()
    scan = data.scan_run(st.session_state.get("scan_run_id", "latest"))
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
if runs and runs[0].get("error") and (scan is None or runs[0]["run_id"] != scan["run"]["run_id"]):
    st.warning(md(f"Scan {runs[0]['run_id']} produced no rows: {runs[0]['error']}"))
if scan is None:
    st.info("No scan has finished yet. Pick symbols and press **Run scan now**.")
    st.stop()
run: dict[str, Any] = scan["run"]
if run.get("error"):
    st.warning(md(f"Scan {run['run_id']} produced no rows: {run['error']}"))
    st.stop()
rows = pd.DataFrame(scan["rows"], columns=scan["columns"])
st.caption(md(
    f"Scan {run['run_id']} ({run['trigger']}) · {run['interval']} candles, look-back {run['lookback']}, "
    f"{run['n_points']} common times from {fmt_time(run['first_open_ms'], c.tz)} to "
    f"{fmt_time(run['last_open_ms'], c.tz)} · {run['pairs']} pairs of {len(run['symbols'])} symbols · "
    f"finished {fmt_time(run['finished_ms'], c.tz)}"
))  # fmt: skip

# ---- filters and the ranked table ------------------------------------------------------------------------
g1, g2, g3, g4, g5 = st.columns(5)
max_p = g1.number_input("Max EG p-value", 0.0, 1.0, 0.05, step=0.01, format="%.3f", key="scan_max_p")
hl_min = g2.number_input("Half-life from (candles)", 0.0, 1e6, 0.0, step=1.0, key="scan_hl_min")
hl_max = g3.number_input("Half-life to (candles)", 0.0, 1e9, 1e6, step=10.0, key="scan_hl_max")
min_liq = g4.number_input("Min liquidity (quote vol./candle)", 0.0, 1e15, 0.0, step=1000.0, key="scan_min_liq")
max_spr = g5.number_input("Max quoted spread (bps)", 0.0, 1e6, 1e6, step=1.0, key="scan_max_spread")
table = {k: rows[k].to_numpy(dtype=object if k in ("y", "x", "sym_a", "sym_b") else "float64") for k in rows}
order = filter_and_rank(table, ScanFilter(float(max_p), float(hl_min), float(hl_max), float(min_liq), float(max_spr)))
ranked = rows.iloc[order].reset_index(drop=True)
ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
shown = research_views.scan_table(ranked)
st.subheader(f"{len(ranked)} of {len(rows)} pairs pass the filters")
picked = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row", key="scan_table",
                      column_config=research_views.SCAN_COLUMN_CONFIG)  # fmt: skip
sel = picked.selection.rows if picked is not None and hasattr(picked, "selection") else []
params = pd.DataFrame([{"run_id": run["run_id"], "interval": run["interval"], "lookback": run["lookback"],
                        "n_points": run["n_points"], "test": run["params"].get("test"), "max_p_value": max_p,
                        "half_life_min": hl_min, "half_life_max": hl_max, "min_liquidity": min_liq,
                        "max_spread_bps": max_spr}])  # fmt: skip
st.download_button("Download ranked pairs (CSV, with the parameters)",
                   csv_text(params.merge(ranked, how="cross")), filename(f"scan-{run['run_id']}-ranked.csv"),
                   "text/csv", key="dl_scan")  # fmt: skip

# ---- the chosen pair ---------------------------------------------------------------------------------------
if ranked.empty:
    st.info("No pair passes these filters; loosen them to pick one.")
    pair_row = None
else:
    pair_row = ranked.iloc[sel[0] if sel else 0]
if pair_row is not None:
    y, x = str(pair_row["y"]), str(pair_row["x"])
    st.subheader(md(f"{y}/{x}"))
    b1, b2, _ = st.columns([1, 1, 3])
    if b1.button("Backtest this pair", type="primary", key="to_backtest"):
        st.session_state["backtest_pair"] = {"y": y, "x": x, "interval": run["interval"],
                                             "limit": int(run["n_points"]), "half_life": pair_row["half_life"],
                                             "from_scan": int(run["run_id"])}  # fmt: skip
        st.switch_page(str(BACKTEST_PAGE))
    b2.button("Monitor live", key="to_live", on_click=send_to_live_monitor, args=(y, x),
              help="adds the pair to the worker (POST /pairs), then opens the live page on it")  # fmt: skip
    if st.session_state.pop("_to_live", False):
        st.switch_page(str(LIVE_PAGE))
    if "_to_live_error" in st.session_state:
        st.error(md(st.session_state.pop("_to_live_error")))
    try:
        legs = {s: data.fetch_candles(data.settings().api_url, s, run["interval"], int(run["lookback"]))
                for s in (y, x)}  # fmt: skip
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        st.stop()
    research_views.pair_diagnostics(legs[y], legs[x], y, x, float(pair_row["beta"]), float(pair_row["alpha"]),
                                    c.tz)  # fmt: skip

# ---- Johansen for a basket ---------------------------------------------------------------------------------
st.subheader("Johansen test of a basket")
basket = st.multiselect("Basket (3 to 5 symbols; 2 works too)", list(run["symbols"]),
                        default=list(run["symbols"])[: min(3, len(run["symbols"]))], max_selections=5,
                        key="johansen_basket")  # fmt: skip
if st.button("Run Johansen", key="johansen_run"):
    if len(basket) < 2:
        st.warning("Pick at least 2 symbols.")
    else:
        try:
            frames = {s: data.fetch_candles(data.settings().api_url, s, run["interval"], int(run["lookback"]))
                      for s in basket}  # fmt: skip
        except data.Unavailable as exc:
            notices.unavailable(str(exc))
            st.stop()
        research_views.johansen_panel(frames)
