"""Kline rows -> typed candles: exact decimals, ms and µs times, malformed rows rejected."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qs_common.times import epoch_to_ms as to_ms
from qs_common.venues.binance.klines import KlineError, read_kline_csv
from tests.conftest import BTC_KLINES_1M
from worker.backfill.klines import klines_frame

ROW = [1723161300000, "61828.00000000", "61860.80000000", "61796.00000000", "61850.01000000", "15.07200000",
       1723161359999, "932148.06446410", 1403, "6.62822000", "409957.59142730", "0"]


def as_us(row: list[object]) -> list[object]:
    return [int(row[0]) * 1000, *row[1:6], int(row[6]) * 1000 + 999, *row[7:]]  # type: ignore[call-overload]


def test_rest_row_is_parsed_exactly() -> None:
    frame = klines_frame("BTCUSDT", "1m", 60_000, [ROW])
    got = frame.row(0, named=True)
    assert got["open_time"] == 1723161300000 and got["close_time"] == 1723161359999
    assert got["open"] == Decimal("61828.00000000") and got["quote_volume"] == Decimal("932148.06446410")
    assert got["trades"] == 1403 and got["taker_buy_quote_volume"] == Decimal("409957.59142730")
    assert got["symbol"] == "BTCUSDT" and got["interval"] == "1m"


def test_microsecond_rows_equal_millisecond_rows() -> None:
    ms = klines_frame("BTCUSDT", "1m", 60_000, [ROW])
    us = klines_frame("BTCUSDT", "1m", 60_000, [as_us(ROW)])
    assert us.equals(ms)


@given(st.integers(min_value=1_500_000_000_000, max_value=4_000_000_000_000))
def test_to_ms_tells_units_apart(t_ms: int) -> None:
    assert to_ms(t_ms) == t_ms
    assert to_ms(t_ms * 1000 + 999) == t_ms
    assert to_ms(t_ms * 1_000_000 + 999_999) == t_ms


def test_official_csv_in_ms_and_us_gives_the_same_frame(tmp_path) -> None:
    text = BTC_KLINES_1M.read_text()
    rows = read_kline_csv(text)
    assert len(rows) == 1440
    us_text = "\n".join(",".join(map(str, as_us(r))) for r in rows)
    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
              "taker_buy_quote_volume,ignore\n")
    a = klines_frame("BTCUSDT", "1m", 60_000, rows)
    b = klines_frame("BTCUSDT", "1m", 60_000, read_kline_csv(header + us_text))
    assert a.equals(b) and a["open_time"].is_sorted() and a["open_time"][0] == 1723075200000


@pytest.mark.parametrize(
    "row, why",
    [
        (ROW[:9], "fields"),
        ([ROW[0], "abc", *ROW[2:]], "decimal"),
        ([ROW[0] + 1, *ROW[1:]], "one 1m candle"),
        ([*ROW[:6], ROW[6] + 60_000, *ROW[7:]], "one 1m candle"),
        (["x", *ROW[1:]], "integer"),
    ],
)
def test_malformed_rows_are_rejected(row: list[object], why: str) -> None:
    with pytest.raises(KlineError, match=why):
        klines_frame("BTCUSDT", "1m", 60_000, [row])


def test_empty_answer_gives_empty_frame() -> None:
    assert klines_frame("BTCUSDT", "1s", 1_000, []).is_empty()
