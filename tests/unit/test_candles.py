"""Candles against an independent computation (plain Decimal, trade by trade) and Binance's own klines."""

from __future__ import annotations

import random
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, ETH_RECORDING
from tests.recordings import full_minutes, official_klines, reference_candles, trades
from worker.candles import STORED_INTERVALS, partial_candles, trades_frame
from worker.store import CandleStore

BTC = trades(BTC_RECORDING)
ETH = trades(ETH_RECORDING)


def frame_of(trade_list):
    return trades_frame([t["s"] for t in trade_list], [t["t"] for t in trade_list], [t["p"] for t in trade_list],
                        [t["q"] for t in trade_list], [t["T"] for t in trade_list], [t["m"] for t in trade_list])


def as_dict(df: pl.DataFrame, symbol: str, interval: str) -> dict[int, dict]:
    rows = df.filter((pl.col("symbol") == symbol) & (pl.col("interval") == interval)).to_dicts()
    return {r["open_time"]: r for r in rows}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        g = got[k]
        for field in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"):
            assert Decimal(str(g[field])) == w[field], (k, field)
        assert g["trades"] == w["trades"], k


@pytest.mark.parametrize("interval", list(STORED_INTERVALS))
def test_partial_candles_equal_plain_decimal_reference(interval):
    ms = STORED_INTERVALS[interval]
    got = partial_candles(frame_of(BTC + ETH))
    assert_same(as_dict(got, "BTCUSDT", interval), reference_candles(BTC, ms))
    assert_same(as_dict(got, "ETHUSDT", interval), reference_candles(ETH, ms))


def test_btc_minutes_equal_binance_official_klines():
    official = official_klines(BTC_KLINES_1M)
    got = as_dict(partial_candles(frame_of(BTC)), "BTCUSDT", "1m")
    minutes = full_minutes(BTC)
    assert len(minutes) == 5
    for m in minutes:
        o, g = official[m], got[m]
        assert [str(g[f]) for f in ("open", "high", "low", "close", "volume", "taker_buy_volume")] == [
            o[f] for f in ("open", "high", "low", "close", "volume", "taker_buy_volume")]
        assert f"{g['quote_volume']:.8f}" == o["quote_volume"] and g["trades"] == o["trades"]
        assert g["close_time"] == o["close_time"]


def test_quote_volume_is_exact_beyond_eight_places():
    # p·q with 10 decimals must not be rounded before summing
    df = trades_frame(["X", "X"], [1, 2], ["123.45678901", "0.00000001"], ["1.5", "0.5"], [0, 1], [True, False])
    c = as_dict(partial_candles(df), "X", "1m")[0]
    assert Decimal(str(c["quote_volume"])) == Decimal("123.45678901") * Decimal("1.5") + Decimal("0.000000005")
    assert Decimal(str(c["taker_buy_volume"])) == Decimal("0.5")


def test_bad_decimal_text_becomes_null_not_an_exception():
    df = trades_frame(["X"], [1], ["abc"], ["1"], [0], [True])
    assert df["price"].null_count() == 1


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), batches=st.integers(1, 12), redeliver=st.integers(0, 3))
def test_store_merges_batches_in_any_order_exactly_once(tmp_path_factory, seed, batches, redeliver):
    """Split the trades into shuffled batches, deliver some twice: stored candles equal one-shot candles."""
    rng = random.Random(seed)
    sample = BTC[:600] + ETH[:400]
    order = list(range(len(sample)))
    cuts = sorted(rng.sample(range(1, len(sample)), batches - 1)) if batches > 1 else []
    parts = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(sample)], strict=True)]
    rng.shuffle(parts)
    parts += [rng.choice(parts) for _ in range(redeliver)]
    store = CandleStore(tmp_path_factory.mktemp("duck") / "m.duckdb")
    try:
        for part in parts:
            store.apply_trades(frame_of([sample[i] for i in part]))
        for sym, subset in (("BTCUSDT", BTC[:600]), ("ETHUSDT", ETH[:400])):
            for interval, ms in STORED_INTERVALS.items():
                stored = store.candles(sym, interval, None, None, 100_000)
                got = {r["open_time"]: r for r in stored.to_dicts()}
                want = reference_candles(subset, ms)
                for w in want.values():  # the API rounds quote volume to 8 places
                    w["quote_volume"] = w["quote_volume"].quantize(Decimal("1e-8"))
                assert_same(got, want)
    finally:
        store.close()


def test_live_trades_never_change_a_rest_candle(tmp_path):
    store = CandleStore(tmp_path / "m.duckdb")
    try:
        store.con.execute(
            "INSERT INTO candles VALUES "
            "('BTCUSDT', '1m', 0, 1, 2, 0.5, 1.5, 10, 10, 3, 5, 5, NULL, NULL, 59999, 'rest')"
        )
        merged = store.apply_trades(trades_frame(["BTCUSDT"], [1], ["100"], ["1"], [10], [False]))
        row = store.candles("BTCUSDT", "1m", 0, 0, 1).to_dicts()[0]
        assert (row["high"], row["volume"], row["trades"], row["source"]) == ("2.00000000", "10.00000000", 3, "rest")
        assert merged.filter(pl.col("interval") == "1m").is_empty()
        assert len(store.candles("BTCUSDT", "1s", None, None, 10)) == 1  # the 1s candle had no REST twin
    finally:
        store.close()
