"""Time parsing shared by the API, backfill and uploads: integer ms UTC inside, whatever comes in.

One rule tells an epoch number's unit from its size (`epoch_unit`): a time between 2001 and 2286 has 10
digits in seconds, 13 in ms, 16 in µs and 19 in ns, so the unit boundaries sit at 10^11, 10^14 and 10^17.
Files are judged as a whole (`file_epoch_unit`): every value must have the first value's unit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

EpochUnit = Literal["s", "ms", "us", "ns"]

S_BELOW = 10**11  # epoch values below this are seconds (in ms they would be before March 1973)
US_FROM = 10**14  # epoch values this large are µs (ms would be past the year 5000)
NS_FROM = 10**17
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# How many of each unit make one millisecond, as (multiply, divide): ms = value * mul // div.
_TO_MS: dict[str, tuple[int, int]] = {"s": (1_000, 1), "ms": (1, 1), "us": (1, 1_000), "ns": (1, 1_000_000)}

# Candle open times outside [2009-01-01, now + 1 day] are mistakes (Bitcoin did not trade before 2009).
SANE_FROM_MS = 1_230_768_000_000
SANE_AHEAD_MS = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_unit(value: int) -> EpochUnit:
    """The unit of one epoch number, by its size: s below 10^11, ms below 10^14, µs below 10^17, else ns."""
    a = abs(value)
    if a < S_BELOW:
        return "s"
    if a < US_FROM:
        return "ms"
    if a < NS_FROM:
        return "us"
    return "ns"


def to_ms(value: int, unit: str) -> int:
    """Epoch `value` in `unit` ("s", "ms", "us", "ns") to ms, flooring sub-millisecond parts."""
    mul, div = _TO_MS[unit]
    return value * mul // div


def file_epoch_unit(values: Iterable[int]) -> tuple[EpochUnit | None, int | None]:
    """The one unit of a file's epoch values, and the index of the first value of another unit (or None).

    (None, None) for no values. A file whose first value is ms and a later one µs is not a file of two
    units: it is a mistake, and the caller names the row at the returned index.
    """
    unit: EpochUnit | None = None
    for i, v in enumerate(values):
        u = epoch_unit(v)
        if unit is None:
            unit = u
        elif u != unit:
            return unit, i
    return unit, None


def epoch_to_ms(t: int) -> int:
    """Epoch ms from ms, µs or ns, told apart by size (Binance moved its spot files to µs in 2025).

    For query parameters and REST data, where small numbers are ms (0 is the epoch, not 1970 in seconds);
    files use `file_epoch_unit`, which also knows seconds.
    """
    if abs(t) >= NS_FROM:
        return t // 1_000_000
    if abs(t) >= US_FROM:
        return t // 1_000
    return t


def iso_to_ms(text: str) -> int:
    """ISO-8601 to epoch ms (exact, sub-ms floored); a time without a zone is UTC. ValueError if not ISO-8601."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # timedelta arithmetic, not float timestamp(): microsecond inputs must not round to the wrong ms
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


