"""The shared sidebar: every control the pages read, returned as one `Controls` value.

The pairs offered are the ones the worker computes (the live registry, `qs_common.control`), and the analytics
settings are that pair's engine settings: the live page's candle-level view is computed with exactly what the
engine uses, so there is one window and one β source per pair, not a second set in the browser.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

import streamlit as st

from dashboard import control_api, control_panel, data
from dashboard.control_api import Registry
from dashboard.safe import md
from qs_common import control
from qs_common.control import PairSettings
from qs_common.settings import Settings

INTERVALS = ("1s", "1m", "5m", "15m", "1h")
REFRESH = {"0.5 s": 0.5, "1 s": 1.0, "2 s": 2.0, "5 s": 5.0, "off": None}
COMMON_ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Tokyo")


@dataclass(frozen=True)
class Controls:
    symbols: tuple[str, ...]  # the active symbols (registry)
    y: str
    x: str
    interval: str
    tz: str
    refresh_s: float | None
    candles: int
    settings: PairSettings  # the pair's engine settings (registry); defaults when the pair is not computed
    computed: bool = True  # False: no pair is in the registry, the worker computes nothing for y/x
    init_cov: float = 1.0  # KALMAN_INIT_COV: not a per-pair setting

    @property
    def pair(self) -> str:
        return f"{self.y}/{self.x}"

    @property
    def window(self) -> int:
        return self.settings.window

    @property
    def regression(self) -> str:
        return control_api.REGRESSION_OF[self.settings.beta_source]

    @property
    def z_entry(self) -> float:
        return self.settings.z_entry

    @property
    def z_exit(self) -> float:
        return self.settings.z_exit

    @property
    def kalman(self) -> tuple[tuple[str, float], ...]:
        """The pair's Kalman settings, so the dashboard's Kalman fair value is the engine's."""
        s = self.settings
        return (("delta", s.delta), ("obs_noise", s.obs_noise), ("init_cov", self.init_cov))

    @property
    def chart_refresh_s(self) -> float | None:
        """Charts redraw less often than the live numbers: at most every 2 s."""
        return None if self.refresh_s is None else max(self.refresh_s, 2.0)


@st.cache_data
def _zones() -> list[str]:
    rest = sorted(z for z in zoneinfo.available_timezones() if z not in COMMON_ZONES)
    return [*COMMON_ZONES, *rest]


def read_registry(cfg: Settings) -> Registry:
    """The registry; when Redis does not answer, the configured sets (the pages then say Redis is down)."""
    try:
        control_api.seed()
        return control_api.registry()
    except data.Unavailable as exc:
        st.sidebar.warning(md(exc))
    pairs = {control.pair_id(y, x): control.default_pair(cfg, y, x) for y, x in cfg.pair_legs()}
    return Registry(tuple(cfg.symbols), pairs, 0)


def fallback_pair(cfg: Settings, reg: Registry) -> PairSettings:
    """What the pages look at while no pair is computed: the configured pair, else two active symbols."""
    legs = cfg.pair_legs()
    if legs:
        return control.default_pair(cfg, *legs[0])
    # one symbol or none: any two distinct names will do, the pages say nothing is computed for them
    y, x = list(dict.fromkeys([*reg.symbols, *cfg.symbols, "ETHUSDT", "BTCUSDT"]))[:2]
    return control.default_pair(cfg, y, x)


def shown_order(active: tuple[str, ...], configured: tuple[str, ...]) -> tuple[str, ...]:
    """The active symbols in the order SYMBOLS lists them, then the ones added at run time (sorted); the
    configured ones while the registry is unreadable."""
    if not active:
        return tuple(configured)
    return (*(s for s in configured if s in active), *(s for s in active if s not in configured))


def choose_pair(cfg: Settings, reg: Registry) -> tuple[PairSettings, bool]:
    options = list(reg.pairs)
    if not options:
        st.info("The worker computes no pair yet: add one under **Symbols and pairs**.")
        return fallback_pair(cfg, reg), False
    if st.session_state.get("pair") not in options:
        st.session_state.pop("pair", None)  # removed elsewhere: fall back to the first pair
    pid = st.selectbox("Pair (Y/X)", options, key="pair", help="the pairs the worker computes")
    return reg.pairs[str(pid)], True


def render(cfg: Settings) -> Controls:
    reg = read_registry(cfg)
    with st.sidebar:
        st.subheader("Market")
        control_panel.show_notice()
        ps, computed = choose_pair(cfg, reg)
        interval = st.segmented_control("Timeframe", INTERVALS, default="1m", required=True, key="interval") or "1m"
        candles = st.select_slider("Candles shown", (60, 120, 300, 600, 1_000, 2_000), value=300, key="candles")
        if computed:
            control_panel.engine_settings(ps, reg.version)
        control_panel.manage(reg, ps.id if computed else None)
        st.subheader("Display")
        tz = st.selectbox("Time zone", _zones(), index=0, key="tz")
        refresh = st.selectbox("Refresh", list(REFRESH), index=0, key="refresh")
    return Controls(
        symbols=shown_order(reg.symbols, cfg.symbols),
        y=ps.y,
        x=ps.x,
        interval=str(interval),
        tz=str(tz),
        refresh_s=REFRESH[str(refresh)],
        candles=int(candles),
        settings=ps,
        computed=computed,
        init_cov=cfg.kalman_init_cov,
    )
