"""Depth diffs and book snapshots in domain names, as the worker's book keeps them.

The venue's wire schemas (`qs_common.venues.binance.wire`: `DepthUpdateMsg`, `DepthSnapshotMsg`) validate what
Binance sends and convert themselves into these. Prices and quantities stay decimal text exactly as Binance sent
them; a level `(price, "0.00000000")` in a diff removes that price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = tuple[str, str]  # (price, quantity) as exact decimal text; quantity "0.00000000" removes the price
Venue = Literal["spot", "usdm"]


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """One depth event in domain names. `prev_final_id` is USDⓈ-M's `pu` (None on spot)."""

    symbol: str
    first_id: int
    final_id: int
    prev_final_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event_ms: int
    recv_ns: int


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A full book at update id `last_update_id` (a REST answer, or one rebuilt from a correct local book)."""

    symbol: str
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event_ms: int | None = None

