"""The seam between history and the forming candle, the pair calc against a batch reference, the stream tail."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis

from dashboard.frames import align_closes, join_candles
from dashboard.live import StreamTail
from dashboard.pair_calc import PairCalc
from tests.integration.browser_util import start_redis

MIN = 60_000


def hist(n: int, start: int = 1_723_161_000_000) -> pd.DataFrame:
    t = np.arange(n, dtype="int64") * MIN + start
    px = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame({"open_time": t, "open": px, "high": px + 1, "low": px - 1, "close": px + 0.5, "volume": 1.0})


def candle(open_time: int, close: float) -> dict[str, object]:
    return {
        "open_time": open_time,
        "open": "1",
        "high": str(close + 1),
        "low": "0.5",
        "close": str(close),
        "volume": "2",
    }


def test_forming_candle_with_the_same_open_time_replaces_the_stored_one() -> None:
    h = hist(5)
    last = int(h["open_time"].iloc[-1])
    out = join_candles(h, candle(last, 999.0))
    assert out["open_time"].tolist() == h["open_time"].tolist()
    assert out["close"].iloc[-1] == 999.0


def test_forming_candle_after_history_is_appended() -> None:
    h = hist(5)
    nxt = int(h["open_time"].iloc[-1]) + MIN
    out = join_candles(h, candle(nxt, 7.0))
    assert len(out) == 6 and out["open_time"].is_unique and out["open_time"].is_monotonic_increasing
    assert out["close"].iloc[-1] == 7.0


def test_a_candle_seen_forming_fills_the_hole_until_history_has_it() -> None:
    h = hist(5)
    closed = int(h["open_time"].iloc[-1]) + MIN  # closed, not yet stored by the worker
    current = closed + MIN
    out = join_candles(h, candle(current, 8.0), [candle(closed, 5.0)])
    assert out["open_time"].diff().dropna().eq(MIN).all()  # no gap
    assert out["close"].tolist()[-2:] == [5.0, 8.0]
    # once stored, history wins over the remembered copy
    stored = pd.concat([h, pd.DataFrame([{**h.iloc[-1].to_dict(), "open_time": closed, "close": 6.0}])])
    out = join_candles(stored.reset_index(drop=True), candle(current, 8.0), [candle(closed, 5.0)])
    assert out["close"].tolist()[-2:] == [6.0, 8.0]


def test_empty_history_and_no_forming_candle() -> None:
    out = join_candles(hist(0), None)
    assert out.empty


def test_align_keeps_shared_open_times_only() -> None:
    y, x = hist(5), hist(5, start=1_723_161_000_000 + 2 * MIN)
    a = align_closes(y, x)
    assert a["open_time"].tolist() == y["open_time"].tolist()[2:]


def test_pair_calc_ols_matches_a_batch_fit_and_is_incremental() -> None:
    rng = np.random.default_rng(3)
    n, w = 200, 30
    x = 60_000 + np.cumsum(rng.normal(0, 20, n))
    y = 0.05 * x + 100 + rng.normal(0, 2, n)
    closes = pd.DataFrame({"open_time": np.arange(n, dtype="int64") * MIN, "y": y, "x": x})
    whole = PairCalc("OLS", w).run(closes, None)
    beta, alpha = np.polyfit(x[-w:], y[-w:], 1)
    assert whole["beta"].iloc[-1] == pytest.approx(beta, rel=1e-9)
    assert whole["alpha"].iloc[-1] == pytest.approx(alpha, rel=1e-9)
    spread = y[-w:] - (beta * x[-w:] + alpha)
    assert whole["spread"].iloc[-1] == pytest.approx(spread[-1], abs=1e-6)
    # fed in pieces, with the last row treated as forming each time, the result is the same
    calc = PairCalc("OLS", w)
    for end in range(50, n + 1, 37):
        part = calc.run(closes.iloc[:end], int(closes["open_time"].iloc[end - 1]))
    part = calc.run(closes, None)
    assert np.allclose(part["zscore"].to_numpy(), whole["zscore"].to_numpy(), equal_nan=True)
    assert calc.needs() == 0


def test_pair_calc_says_how_many_points_it_still_needs() -> None:
    closes = pd.DataFrame(
        {"open_time": np.arange(10, dtype="int64") * MIN, "y": np.arange(10.0) + 1, "x": np.arange(10.0) + 2}
    )
    calc = PairCalc("OLS", 30)
    out = calc.run(closes, None)
    assert out["fair"].isna().all()
    assert calc.needs_fit() == 20
    assert calc.needs() == 20 + 30


@pytest.mark.parametrize("kind", ["Huber", "Theil-Sen", "Kalman"])
def test_every_regression_gives_a_fair_value(kind: str) -> None:
    rng = np.random.default_rng(5)
    x = 60_000 + np.cumsum(rng.normal(0, 20, 120))
    y = 0.05 * x + rng.normal(0, 1, 120)
    out = PairCalc(kind, 30).run(pd.DataFrame({"open_time": np.arange(120, dtype="int64"), "y": y, "x": x}), None)
    assert out["fair"].notna().sum() > 50
    assert out["zscore"].notna().sum() > 0


@pytest.fixture(scope="module")
def rds() -> Iterator[redis.Redis]:
    for url in start_redis():
        yield redis.Redis.from_url(url, decode_responses=True)


def test_stream_tail_reads_only_what_is_new(rds: redis.Redis) -> None:
    for i in range(50):
        rds.xadd("s", {"pair": "A/B", "ts": 1000 + i, "zscore": i / 10})
    tail = StreamTail("s", initial=20, max_rows=30, batch=7)
    first = tail.poll(rds)
    assert len(first) == 20 and first["ts"].tolist() == list(range(1030, 1050))
    assert tail.poll(rds).empty
    for i in range(50, 75):
        rds.xadd("s", {"pair": "A/B", "ts": 1000 + i, "zscore": i / 10})
    new = tail.poll(rds)
    assert new["ts"].tolist() == list(range(1050, 1075))  # read in batches of 7 from the last id
    assert len(tail.frame) == 30 and tail.frame["ts"].iloc[-1] == 1074  # bounded
    assert tail.frame["zscore"].dtype == "float64"


def test_stream_tail_far_behind_jumps_to_the_newest(rds: redis.Redis) -> None:
    rds.delete("far")
    for i in range(10):
        rds.xadd("far", {"ts": i})
    tail = StreamTail("far", initial=5, max_rows=100, batch=2)
    tail.poll(rds)
    for i in range(10, 60):
        rds.xadd("far", {"ts": i})
    tail.poll(rds)  # 10 batches of 2 do not reach the end: take the newest 5 instead
    assert tail.frame["ts"].tolist() == [55, 56, 57, 58, 59]
