"""The shared sidebar: every control the pages read, returned as one `Controls` value."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

import streamlit as st

from qs_common.settings import Settings

INTERVALS = ("1s", "1m", "5m", "15m", "1h")
REGRESSIONS = ("OLS", "Huber", "Theil-Sen", "Kalman")
REFRESH = {"0.5 s": 0.5, "1 s": 1.0, "2 s": 2.0, "5 s": 5.0, "off": None}
COMMON_ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Tokyo")


@dataclass(frozen=True)
class Controls:
    symbols: tuple[str, ...]
    y: str
    x: str
    interval: str
    window: int
    regression: str
    z_exit: float
    z_entry: float
    tz: str
    refresh_s: float | None
    candles: int

    @property
    def pair(self) -> str:
        return f"{self.y}/{self.x}"

    @property
    def chart_refresh_s(self) -> float | None:
        """Charts redraw less often than the live numbers: at most every 2 s."""
        return None if self.refresh_s is None else max(self.refresh_s, 2.0)


@st.cache_data
def _zones() -> list[str]:
    rest = sorted(z for z in zoneinfo.available_timezones() if z not in COMMON_ZONES)
    return [*COMMON_ZONES, *rest]


def render(cfg: Settings) -> Controls:
    symbols = list(cfg.symbols)
    y0, x0 = cfg.pair_legs()[0] if cfg.pair_legs() else (symbols[0], symbols[-1])
    with st.sidebar:
        st.subheader("Market")
        chosen = st.multiselect("Symbols", symbols, default=symbols, key="symbols")
        pair_options = [
            *("/".join(legs) for legs in cfg.pair_legs()),
            *(f"{a}/{b}" for a in symbols for b in symbols if a != b),
        ]
        pair_options = list(dict.fromkeys(pair_options))
        pair = st.selectbox("Pair (Y/X)", pair_options, index=pair_options.index(f"{y0}/{x0}"), key="pair")
        y, x = pair.split("/")
        interval = st.segmented_control("Timeframe", INTERVALS, default="1m", required=True, key="interval") or "1m"
        candles = st.select_slider("Candles shown", (60, 120, 300, 600, 1_000, 2_000), value=300, key="candles")
        st.subheader("Analytics")
        regression = st.selectbox("Regression", REGRESSIONS, key="regression")
        window = st.number_input("Rolling window (points)", 10, 5_000, value=60, step=10, key="window")
        z_exit, z_entry = st.slider("Z-score bands (exit, entry)", 0.0, 5.0, (0.5, 2.0), 0.1, key="zbands")
        st.subheader("Display")
        tz = st.selectbox("Time zone", _zones(), index=0, key="tz")
        refresh = st.selectbox("Refresh", list(REFRESH), index=0, key="refresh")
    return Controls(
        symbols=tuple(chosen) or tuple(symbols),
        y=y,
        x=x,
        interval=str(interval),
        window=int(window),
        regression=str(regression),
        z_exit=float(z_exit),
        z_entry=float(z_entry),
        tz=str(tz),
        refresh_s=REFRESH[str(refresh)],
        candles=int(candles),
    )
