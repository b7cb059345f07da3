"""Candle intervals: the one table the worker, API, backfill, research and dashboard read.

The names are Binance's kline interval names too (`qs_common.venues.binance.klines.VENUE_INTERVALS` says which
of the stored ones each venue serves).
"""

from __future__ import annotations

# Built from trades and stored (and backfilled from REST klines).
STORED_MS: dict[str, int] = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
# Aggregated from stored candles when read (from 5m, or from 1m where no 5m candle is stored).
DERIVED_MS: dict[str, int] = {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
INTERVAL_MS: dict[str, int] = {**STORED_MS, **DERIVED_MS}
# Intervals research scans and backtests accept: 1s candles are kept too briefly to research.
RESEARCH_INTERVALS: tuple[str, ...] = tuple(i for i in INTERVAL_MS if i != "1s")
