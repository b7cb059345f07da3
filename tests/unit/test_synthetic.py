"""The synthetic market: realistic volatility, a reproducible past, candles the import accepts, live goes on."""

from __future__ import annotations

import asyncio
import json
import math
import random
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from ingest.sources.synthetic import SyntheticSource
from ingest.sources.synthetic_model import State, history, step
from qs_common import ohlc

SYMBOLS = ("BTCUSDT", "ETHUSDT")
END_MS = 1_790_000_223_456  # a fixed clock: the history depends only on its arguments
BTC_BAND = (0.0005, 0.001)  # stdev of BTC's 1m log returns: 0.05 % .. 0.1 % (≈ 40–75 % annualised)


def _log_returns(frame: pl.DataFrame) -> np.ndarray:
    closes = frame["close"].cast(pl.Float64).to_numpy()
    return np.diff(np.log(closes))


@pytest.fixture(scope="module")
def day() -> object:
    return history(SYMBOLS, 7, END_MS, 24, 50.0)


def test_a_day_of_1s_1m_and_5m_candles_ends_at_the_minute_before_the_clock(day):
    assert day.end_ms == END_MS - END_MS % 60_000 and day.end_ms - day.start_ms == 86_400_000
    for sym in SYMBOLS:
        assert day.candles["1s"][sym].height == 86_400
        assert day.candles["1m"][sym].height == 1_440
        assert day.candles["5m"][sym].height == 287  # whole 5-minute candles only
        assert day.candles["1m"][sym]["open_time"][-1] == day.end_ms - 60_000
        assert day.candles["5m"][sym]["open_time"][0] % 300_000 == 0


def test_the_btc_like_history_moves_like_btc_per_minute(day):
    sd = float(np.std(_log_returns(day.candles["1m"]["BTCUSDT"]), ddof=1))
    # the old model moved ~1.8 % a minute (30 times too wild); Binance's BTCUSDT 1m: ~0.05–0.1 %
    assert BTC_BAND[0] <= sd <= BTC_BAND[1], sd
    eth = float(np.std(_log_returns(day.candles["1m"]["ETHUSDT"]), ddof=1))
    assert BTC_BAND[0] <= eth <= 2 * BTC_BAND[1], eth  # ETH is somewhat livelier than BTC


def test_the_same_seed_gives_the_same_history_and_another_seed_another():
    a = history(SYMBOLS, 11, END_MS, 2, 50.0)
    b = history(SYMBOLS, 11, END_MS, 2, 50.0)
    c = history(SYMBOLS, 12, END_MS, 2, 50.0)
    for iv in ("1s", "1m", "5m"):
        for sym in SYMBOLS:
            assert a.candles[iv][sym].equals(b.candles[iv][sym])
    assert a.state == b.state
    assert not a.candles["1m"]["BTCUSDT"].equals(c.candles["1m"]["BTCUSDT"])


@pytest.mark.parametrize("interval", ["1s", "1m", "5m"])
def test_every_candle_passes_the_import_validation(day, interval):
    ms = {"1s": 1_000, "1m": 60_000, "5m": 300_000}[interval]
    for sym in SYMBOLS:
        body = day.candles[interval][sym].write_csv().encode()
        checked = ohlc.validate(ohlc.read_csv(body), ms, now=END_MS)  # raises naming row and column if not
        assert checked.frame.height == day.candles[interval][sym].height
        assert checked.frame["taker_buy_volume"].null_count() == 0


def test_each_1m_candle_is_exactly_its_sixty_1s_candles(day):
    sec = day.candles["1s"]["ETHUSDT"].with_columns(minute=pl.col("open_time") // 60_000 * 60_000)
    minute = day.candles["1m"]["ETHUSDT"]
    for i in (0, 700, 1_439):
        row = minute.row(i, named=True)
        part = sec.filter(pl.col("minute") == row["open_time"]).sort("open_time")
        assert part.height == 60
        assert row["open"] == part["open"][0] and row["close"] == part["close"][-1]
        assert Decimal(row["high"]) == max(map(Decimal, part["high"]))
        assert Decimal(row["low"]) == min(map(Decimal, part["low"]))
        for col in ("volume", "quote_volume", "taker_buy_volume"):
            assert Decimal(row[col]) == sum(map(Decimal, part[col])), col
        assert row["trades"] == part["trades"].sum()


def test_the_pair_stays_cointegrated_around_beta_and_alpha(day):
    x = day.candles["1m"]["BTCUSDT"]["close"].cast(pl.Float64).to_numpy()
    y = day.candles["1m"]["ETHUSDT"]["close"].cast(pl.Float64).to_numpy()
    spread = y - (0.05 * x + 100.0)
    assert abs(float(np.mean(spread))) < 2.0 and float(np.std(spread)) < 5.0


def test_the_live_model_has_the_same_volatility_per_minute():
    rng = random.Random(3)
    state = State.start(SYMBOLS)
    closes = []
    for _ in range(400):  # 400 minutes of 0.1 s steps
        for _ in range(600):
            step(state, SYMBOLS, 0.1, rng.gauss)
        closes.append(state.prices["BTCUSDT"])
    sd = float(np.std(np.diff(np.log(closes)), ddof=1))
    assert BTC_BAND[0] <= sd <= BTC_BAND[1], sd


def test_without_history_the_live_feed_starts_at_the_model_start_and_posts_nothing():
    async def first_trade() -> dict[str, object]:
        src = SyntheticSource(SYMBOLS, seed=5, rate=200.0, limit=200, history_h=0)
        async for item in src.items():
            if isinstance(item, tuple):
                frame = json.loads(item[1])
                if frame["stream"] == "btcusdt@trade":
                    assert src.history_task is None
                    return dict(frame["data"])
        raise AssertionError("no BTC trade in 200 frames")

    trade = asyncio.run(first_trade())
    assert math.isclose(float(str(trade["p"])), 60_000.0, rel_tol=0.001)


def test_with_history_the_live_feed_goes_on_from_where_the_history_ended():
    async def first_trade() -> tuple[dict[str, object], float]:
        # nothing listens on port 9: the import retries in the background and is cancelled at the end
        src = SyntheticSource(SYMBOLS, seed=5, rate=200.0, limit=200, history_h=1, api_url="http://127.0.0.1:9")
        items = src.items()
        try:
            async for item in items:
                if isinstance(item, tuple):
                    frame = json.loads(item[1])
                    if frame["stream"] == "btcusdt@trade":
                        assert src.history_task is not None and not src.history_task.done()
                        return dict(frame["data"]), src.prices["BTCUSDT"]
        finally:
            await items.aclose()
            assert src.history_task is not None and src.history_task.done()
        raise AssertionError("no BTC trade in 200 frames")

    trade, _ = asyncio.run(first_trade())
    past = history(SYMBOLS, 5, END_MS, 1, 200.0)
    # the history of the same seed ended here (the clock only moves the window, not the path)
    assert math.isclose(float(str(trade["p"])), past.state.prices["BTCUSDT"], rel_tol=0.001)
    assert not math.isclose(past.state.prices["BTCUSDT"], 60_000.0, rel_tol=1e-6)
