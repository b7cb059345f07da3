"""One source per vocabulary (issue 13 seam 3): intervals and the symbol pattern come from qs_common."""

from __future__ import annotations

from typing import get_args

import pytest

from qs_common import intervals
from qs_common.settings import Settings
from qs_common.symbols import is_symbol
from qs_common.venues.binance.klines import VENUE_INTERVALS
from worker.research_backtest import CandleSource


def test_the_interval_table_is_ordered_and_split_into_stored_and_derived() -> None:
    assert list(intervals.INTERVAL_MS) == ["1s", "1m", "5m", "15m", "1h", "4h", "1d"]
    assert set(intervals.STORED_MS).isdisjoint(intervals.DERIVED_MS)
    ms = list(intervals.INTERVAL_MS.values())
    assert ms == sorted(ms)
    assert all(m % intervals.STORED_MS["1s"] == 0 for m in ms)


def test_literal_interval_types_and_venues_name_only_table_intervals() -> None:
    # pydantic needs Literal types; they must still say what the table says
    assert get_args(CandleSource.model_fields["interval"].annotation) == intervals.RESEARCH_INTERVALS
    assert set(get_args(Settings.model_fields["scan_interval"].annotation)) <= set(intervals.RESEARCH_INTERVALS)
    for served in VENUE_INTERVALS.values():
        assert set(served) <= set(intervals.STORED_MS)


@pytest.mark.parametrize("text", ["BTCUSDT", "1000PEPEUSDT", "AB"])
def test_symbols(text: str) -> None:
    assert is_symbol(text)


@pytest.mark.parametrize("text", ["", "B", "btcusdt", "BTC-USDT", "BTCUSDT\n", "A" * 31])
def test_not_symbols(text: str) -> None:
    assert not is_symbol(text)


def test_the_dashboard_offers_only_table_intervals() -> None:
    from dashboard import data, sidebar

    assert set(sidebar.INTERVALS) <= set(intervals.INTERVAL_MS)
    assert data.INTERVAL_MS is intervals.INTERVAL_MS
