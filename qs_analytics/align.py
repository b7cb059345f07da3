"""As-of alignment of a pair's two legs, which tick at different times.

Each new price of either leg is paired with the other leg's last known price, so the pair series has one
observation per leg update (once both legs have been seen). Whether the price is a trade price or a book
mid is the caller's choice: the aligner only sees (symbol, ts_ms, price).
"""

from __future__ import annotations

import math
from typing import NamedTuple


class PairObservation(NamedTuple):
    ts_ms: int
    y: float
    x: float


class PairAligner:
    """Pairs `y_symbol` (the dependent leg) with `x_symbol` as of each update."""

    __slots__ = ("y_symbol", "x_symbol", "_y", "_x")

    def __init__(self, y_symbol: str, x_symbol: str) -> None:
        if y_symbol.upper() == x_symbol.upper():
            raise ValueError(f"a pair needs two different symbols, got {y_symbol} twice")
        self.y_symbol = y_symbol.upper()
        self.x_symbol = x_symbol.upper()
        self._y = math.nan
        self._x = math.nan

    @property
    def pair(self) -> str:
        """The contract's pair name, `Y/X`."""
        return f"{self.y_symbol}/{self.x_symbol}"

    def update(self, symbol: str, ts_ms: int, price: float) -> PairObservation | None:
        """Record a leg's price; emit the aligned observation once both legs are known.

        Symbols outside the pair are ignored (None), so one tick stream can feed several aligners.
        """
        sym = symbol.upper()
        if sym == self.y_symbol:
            self._y = price
        elif sym == self.x_symbol:
            self._x = price
        else:
            return None
        if self._y != self._y or self._x != self._x:
            return None
        return PairObservation(ts_ms, self._y, self._x)
