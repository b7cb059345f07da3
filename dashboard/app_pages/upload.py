"""Upload: an OHLC CSV (or two, or one with a symbol column) → validation, the same analytics, downloads, import."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.components import charts, notices
from dashboard.csv_upload import CsvError, ParsedCsv, infer_interval_ms, parse_ohlc_csv, to_api_csv
from dashboard.features import features
from dashboard.frames import align_closes
from dashboard.pair_calc import PairCalc
from dashboard.safe import csv_text, filename, md, plotly
from dashboard.sidebar import Controls
from qs_analytics.hedge import KINDS
from qs_analytics.stationarity import adf_test
from qs_common import intervals
from qs_common.symbols import is_symbol

IMPORT_INTERVALS = intervals.STORED_MS  # imports go where the worker stores candles
c: Controls = st.session_state["_controls"]
st.title("Upload OHLC")
st.caption(
    "Binance kline CSV (ms or µs, with or without header) or any CSV with a time column and "
    "open, high, low, close (volume and symbol optional); ISO or epoch times. Nothing is stored "
    "unless you import it."
)

files = st.file_uploader("CSV file(s)", type=["csv", "txt"], accept_multiple_files=True, key="upload_files")
if not files:
    st.stop()

series: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
no_volume: set[str] = set()  # series shown with volume 0 that must not be stored as if it were known
failed = False
for f in files:
    try:
        parsed: ParsedCsv = parse_ohlc_csv(f.getvalue(), int(data.settings().api_max_body_mb * 1_048_576))
    except CsvError as exc:
        failed = True
        st.error(f"**{md(f.name)}** was not accepted:\n\n" + "\n".join(f"- {md(p)}" for p in exc.problems))
        continue
    stem = re.sub(r"[^A-Za-z0-9]", "", f.name.split(".")[0].split("-")[0]).upper() or "SERIES"
    added = parsed.symbols or [stem if stem not in series else f"{stem}{len(series) + 1}"]
    for name in added:
        series[name] = parsed.for_symbol(name) if parsed.symbols else (parsed.frame, parsed.text)
        if not parsed.has_volume:
            no_volume.add(name)
    st.success(
        f"**{md(f.name)}**: "
        + md(
            f"{len(parsed.frame)} rows, layout {parsed.layout}"
            + (f", symbols {', '.join(parsed.symbols)}" if parsed.symbols else "")
        )
    )
if failed or not series:
    st.stop()

names = list(series)
if len(names) >= 2:
    a, b = st.columns(2)
    y = a.selectbox("Y leg", names, index=0, key="up_y")
    x = b.selectbox("X leg", [n for n in names if n != y], index=0, key="up_x")
    closes = align_closes(series[y][0], series[x][0])
    # an uploaded file is not a live pair: its own window and regression, starting from the live pair's
    a, b = st.columns(2)
    window = int(a.number_input("Rolling window (points)", 10, 5_000, min(c.window, max(10, len(closes) // 2)),
                                step=10, key="up_window"))  # fmt: skip
    regression = str(b.selectbox("Regression", KINDS, index=KINDS.index(c.regression), key="up_regression"))
    st.subheader(md(f"{y}/{x}: {len(closes)} shared candles · {regression}, window {window}"))
    calc = PairCalc(regression, window, dict(c.kalman))
    out = calc.run(closes, None)
    if out["zscore"].notna().sum() == 0:
        notices.needs_more("Pair analytics", max(calc.needs(), 1), len(closes))
    else:
        st.plotly_chart(charts.legs(out, plotly(y), plotly(x), c.tz), config=charts.CONFIG)
        st.plotly_chart(charts.spread_z(out, c.tz, c.z_exit, c.z_entry), config=charts.CONFIG)
        st.plotly_chart(charts.lines(out, ["beta"], c.tz, f"Hedge ratio ({regression})"), config=charts.CONFIG)
        res = adf_test(out["spread"].dropna().to_numpy())
        st.markdown(
            f"**ADF on the whole spread:** {res.verdict}"
            + (f" (statistic {res.statistic:.3f}, p = {res.p_value:.4f})" if res.ran else "")
        )
    results = out.rename(columns={"y": y, "x": x})
    st.download_button(
        "Download pair analytics (CSV)",
        csv_text(results),
        filename(f"{y}-{x}-analytics.csv"),
        "text/csv",
        key="up_dl_pair",
    )

st.subheader("Series")
pick = st.selectbox("Series", names, key="up_series")
frame, text = series[pick]
st.plotly_chart(charts.candles(frame, plotly(pick), c.tz), config=charts.CONFIG)
feats = features(frame)
st.dataframe(feats.iloc[::-1], hide_index=True, height=300)
st.download_button(
    "Download features (CSV)", csv_text(feats), filename(f"{pick}-features.csv"), "text/csv", key="up_dl_features"
)

st.subheader("Import into history")
step = infer_interval_ms(frame["open_time"])
guess = next((k for k, v in IMPORT_INTERVALS.items() if v == step), "1m")
i1, i2, i3 = st.columns(3)
symbol = i1.text_input("Symbol", value=pick if is_symbol(pick) else "", key="up_symbol")
interval = i2.selectbox("Interval", list(IMPORT_INTERVALS), index=list(IMPORT_INTERVALS).index(guess), key="up_int")
if i3.button("Import", key="up_import"):
    symbol = symbol.strip().upper()
    if not is_symbol(symbol):
        st.error("Symbol: letters and digits only, like BTCUSDT.")
    elif pick in no_volume:
        st.error("The file has no volume column: history keeps volumes, so these candles are not imported.")
    elif step is not None and step != IMPORT_INTERVALS[interval]:
        st.error(f"Interval: the file's candles are {step // 1000} s apart, not {interval}.")
    else:
        try:
            n, skipped = data.import_candles(symbol, interval, to_api_csv(text))
        except data.Unavailable as exc:
            st.error(md(exc))
        else:
            kept = f" {skipped} were already stored and kept as they are." if skipped else ""
            st.success(f"Imported {n} {interval} candles of {symbol}.{kept}")
