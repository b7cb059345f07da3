"""The synthetic market: one seeded model for the live feed and for the past it writes first.

The first symbol is BTC-like: a driftless geometric random walk from 60,000 with 55 % annualised volatility
(σ ≈ 9.8e-5 per √s, so ≈ 0.076 % per 1m candle, inside BTC's usual 0.05–0.1 %). The second is ETH-like and
cointegrated with it: y = 0.05·x + 100 + s, s an Ornstein–Uhlenbeck spread with a half-life of about a minute
(κ = 1/90 per s), small enough that y moves ≈ 0.1 % per minute, so the pair analytics have something to find.
Further symbols are independent random walks from 100 with the same volatility. Prices sit on a 0.01 grid.

`history` draws the same model with numpy (vectorised: 24 h in well under a second) and aggregates it into
1s, 1m and 5m candles in integer units, so every 1m candle is exactly the sum of its 1s candles; `State` is
where it ended, and the live source goes on from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.signal import lfilter

TICK = 0.01
BETA, ALPHA = 0.05, 100.0
START_X, START_OTHER = 60_000.0, 100.0
VOL_ANNUAL = 0.55
SIGMA_PER_S = VOL_ANNUAL / math.sqrt(365 * 86_400)
SPREAD_KAPPA = 1 / 90  # per second: half-life ln2/κ ≈ 62 s
SPREAD_NOISE = 0.3  # per √s, in quote currency
TRADE_SHARE = 0.35  # share of frames that are trades (the rest are book tickers)
MEAN_QTY = 0.05
SUBSTEPS = 10  # price points per second in the history (live steps every ~10 ms)
INTERVALS_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}


@dataclass
class State:
    """The model's state: the latent price of each symbol and the pair's spread."""

    prices: dict[str, float]
    spread: float = 0.0

    @classmethod
    def start(cls, symbols: tuple[str, ...]) -> State:
        return cls({s: START_X if i == 0 else START_OTHER for i, s in enumerate(symbols)})


def step(state: State, symbols: tuple[str, ...], dt_s: float, gauss: Callable[[float, float], float]) -> None:
    """Advance the live model by dt_s seconds; `gauss(mu, sigma)` is the source's seeded normal draw."""
    vol = SIGMA_PER_S * math.sqrt(dt_s)
    for i, s in enumerate(symbols):
        if i != 1:
            state.prices[s] *= math.exp(gauss(0.0, vol))
    if len(symbols) > 1:
        state.spread += -state.spread * SPREAD_KAPPA * dt_s + gauss(0.0, SPREAD_NOISE * math.sqrt(dt_s))
        state.prices[symbols[1]] = BETA * state.prices[symbols[0]] + ALPHA + state.spread


@dataclass
class History:
    """Candles per interval and symbol (CSV-ready text columns), and the model's state at `end_ms`."""

    candles: dict[str, dict[str, pl.DataFrame]]
    state: State
    start_ms: int
    end_ms: int


def _paths(symbols: tuple[str, ...], seconds: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """Latent prices at SUBSTEPS points per second for each symbol, and the final spread."""
    n = seconds * SUBSTEPS
    dt = 1.0 / SUBSTEPS
    paths: dict[str, np.ndarray] = {}
    for i, s in enumerate(symbols):
        if i == 1:
            continue
        start = START_X if i == 0 else START_OTHER
        paths[s] = start * np.exp(np.cumsum(rng.normal(0.0, SIGMA_PER_S * math.sqrt(dt), n)))
    spread_end = 0.0
    if len(symbols) > 1:
        # the same Euler step as the live model, s[k] = (1 − κ·dt)·s[k−1] + ε, as one linear filter
        eps = rng.normal(0.0, SPREAD_NOISE * math.sqrt(dt), n)
        spread = lfilter([1.0], [1.0, -(1.0 - SPREAD_KAPPA * dt)], eps)
        paths[symbols[1]] = BETA * paths[symbols[0]] + ALPHA + spread
        spread_end = float(spread[-1])
    return {s: paths[s] for s in symbols}, spread_end


def _decimal(units: pl.Expr, places: int) -> pl.Expr:
    """Non-negative integer units of 10^-places as exact decimal text."""
    scale = 10**places
    return (units // scale).cast(pl.String) + "." + (units % scale).cast(pl.String).str.zfill(places)


def _seconds(path: np.ndarray, rate: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One 1s candle per second in integer units: cents, 1e-5 of the base asset, 1e-7 of the quote asset.

    Quote volumes price the second's volume at its typical price (high + low + close) / 3, in whole cents.
    """
    mids = np.rint(path / TICK).astype(np.int64).reshape(-1, SUBSTEPS)
    # a buy trades at the ask (= the rounded mid), a sell one tick lower at the bid, like the live book
    prices = mids - (rng.random(mids.shape) < 0.5)
    trades = np.maximum(1, rng.poisson(rate * TRADE_SHARE, len(mids)))
    # each trade's size is exponential (mean MEAN_QTY) plus 0.00001, as in the live feed
    volume = np.rint(rng.gamma(trades, MEAN_QTY) * 1e5).astype(np.int64) + trades
    buys = rng.binomial(volume, 0.5)  # takers buy about half the volume
    high, low, close = prices.max(axis=1), prices.min(axis=1), prices[:, -1]
    typical = (high + low + close) // 3
    return {"open": prices[:, 0], "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": typical * volume, "trades": trades, "taker_buy_volume": buys,
            "taker_buy_quote_volume": typical * buys}


def _aggregate(sec: dict[str, np.ndarray], first: int, per: int) -> dict[str, np.ndarray]:
    """Whole runs of `per` 1s candles from index `first` on, one candle each (a partial run at the end is left out)."""
    n = (len(sec["open"]) - first) // per

    def r(c: str) -> np.ndarray:
        return sec[c][first:first + n * per].reshape(n, per)

    return {"open": r("open")[:, 0], "high": r("high").max(axis=1), "low": r("low").min(axis=1),
            "close": r("close")[:, -1], "volume": r("volume").sum(axis=1),
            "quote_volume": r("quote_volume").sum(axis=1), "trades": r("trades").sum(axis=1),
            "taker_buy_volume": r("taker_buy_volume").sum(axis=1),
            "taker_buy_quote_volume": r("taker_buy_quote_volume").sum(axis=1)}


def _frame(cols: dict[str, np.ndarray], start_ms: int, step_ms: int) -> pl.DataFrame:
    raw = pl.DataFrame({k: v.astype(np.int64) for k, v in cols.items()})
    return raw.select(
        open_time=pl.int_range(0, raw.height, dtype=pl.Int64) * step_ms + start_ms,
        open=_decimal(pl.col("open"), 2), high=_decimal(pl.col("high"), 2),
        low=_decimal(pl.col("low"), 2), close=_decimal(pl.col("close"), 2),
        volume=_decimal(pl.col("volume"), 5), quote_volume=_decimal(pl.col("quote_volume"), 7),
        trades=pl.col("trades"), taker_buy_volume=_decimal(pl.col("taker_buy_volume"), 5),
        taker_buy_quote_volume=_decimal(pl.col("taker_buy_quote_volume"), 7),
    )


def history(symbols: tuple[str, ...], seed: int, end_ms: int, hours: float, rate: float) -> History:
    """`hours` of candles ending at `end_ms` rounded down to the minute, drawn with `seed`.

    The same arguments give the same candles. 1s and 1m cover the whole window; 5m only its whole 5-minute
    candles (the live feed builds the 5m candle it starts in, from its own trades, so that one lacks the
    history's minutes).
    """
    end = end_ms - end_ms % INTERVALS_MS["1m"]
    seconds = int(hours * 3600) // 60 * 60
    start = end - seconds * 1_000
    candles: dict[str, dict[str, pl.DataFrame]] = {iv: {} for iv in INTERVALS_MS}
    if seconds <= 0:
        return History(candles, State.start(symbols), end, end)
    rng = np.random.default_rng(seed)
    paths, spread = _paths(symbols, seconds, rng)
    for s in symbols:
        sec = _seconds(paths[s], rate, rng)
        for iv, ms in INTERVALS_MS.items():
            first = (-start) % ms // 1_000  # seconds until the first open time on this interval's grid
            cols = sec if ms == 1_000 else _aggregate(sec, first, ms // 1_000)
            candles[iv][s] = _frame(cols, start + first * 1_000, ms)
    state = State({s: float(p[-1]) for s, p in paths.items()}, spread)
    return History(candles, state, start, end)
