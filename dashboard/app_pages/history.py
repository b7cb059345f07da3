"""History and export: any stored symbol, interval and range; per-candle features; CSV downloads."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from dashboard import data
from dashboard.components import charts, notices
from dashboard.features import features
from dashboard.frames import align_closes, display_time
from dashboard.pair_calc import PairCalc
from dashboard.safe import csv_text, filename, md, plotly
from dashboard.sidebar import INTERVALS, Controls

MAX_ROWS = 100_000
c: Controls = st.session_state["_controls"]
st.title("History and export")

try:
    stored = data.fetch_symbols(data.settings().api_url)
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
symbols = sorted({str(s["symbol"]) for s in stored} | set(c.symbols))
spans = {(str(s["symbol"]), str(s["interval"])): s for s in stored}

left, mid, right = st.columns(3)
symbol = left.selectbox("Symbol", symbols, index=symbols.index(c.y) if c.y in symbols else 0, key="hist_symbol")
interval = mid.selectbox("Interval", INTERVALS, index=1, key="hist_interval")
span = spans.get((symbol, interval)) or spans.get((symbol, "1m")) or spans.get((symbol, "1s"))
last_ms = int(span["last_open_time"]) if span else int(datetime.now(UTC).timestamp() * 1000)
first_ms = int(span["first_open_time"]) if span else last_ms
last_day = datetime.fromtimestamp(last_ms / 1000, UTC).date()
first_day = datetime.fromtimestamp(first_ms / 1000, UTC).date()
dates = right.date_input(
    "Range (UTC days)",
    (max(first_day, last_day - timedelta(days=1)), last_day),
    min_value=first_day,
    max_value=last_day,
    key="hist_range",
)
if not isinstance(dates, tuple) or len(dates) != 2:
    st.info("Pick a start and an end day.")
    st.stop()
start = int(datetime.combine(dates[0], time.min, UTC).timestamp() * 1000)
end = int(datetime.combine(dates[1], time.max, UTC).timestamp() * 1000)
pair_too = st.checkbox(f"Add pair analytics for {c.pair} ({c.regression}, window {c.window})", key="hist_pair")

try:
    frame = data.fetch_candles(data.settings().api_url, symbol, interval, MAX_ROWS, start, end)
except data.Unavailable as exc:
    notices.unavailable(str(exc))
    st.stop()
if frame.empty:
    st.info(md(f"No {interval} candles for {symbol} between {dates[0]} and {dates[1]} (UTC)."))
    st.stop()
st.caption(
    f"{len(frame)} candles · first {display_time(frame['open_time'].iloc[:1], c.tz)[0]} · "
    f"last {display_time(frame['open_time'].iloc[-1:], c.tz)[0]}"
)
st.plotly_chart(charts.candles(frame.iloc[-5_000:], plotly(symbol), c.tz, height=480), config=charts.CONFIG)

table = features(frame)
if pair_too:
    try:
        legs = {s: data.fetch_candles(data.settings().api_url, s, interval, MAX_ROWS, start, end) for s in (c.y, c.x)}
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        st.stop()
    pc = PairCalc(c.regression, c.window, dict(c.kalman))
    calc = pc.run(align_closes(legs[c.y], legs[c.x]), None)
    calc = calc.rename(columns={"y": c.y, "x": c.x})
    table = table.merge(calc, on="open_time", how="left")
shown = table.copy()
shown.insert(0, "time", display_time(shown["open_time"], c.tz))
st.subheader(f"Per-{interval} stats and features")
st.dataframe(shown.iloc[::-1], hide_index=True, height=360)

d1, d2 = st.columns(2)
d1.download_button(
    "Download OHLC (CSV)", csv_text(frame), filename(f"{symbol}-{interval}-ohlc.csv"), "text/csv", key="dl_ohlc"
)
d2.download_button(
    "Download analytics (CSV)",
    csv_text(table),
    filename(f"{symbol}-{interval}-analytics.csv"),
    "text/csv",
    key="dl_analytics",
)
