"""One symbol's exact local L2 order book: absolute quantities per price, from a snapshot and depth diffs.

Pure: no I/O, no clock. Continuity of update ids is `qs_analytics.book.sync`'s business; this class only applies
levels. Prices are keyed by an exact scaled integer (10^-8 units: Binance sends at most 8 decimal places, and
`qs_common.models.DecimalText` admits more only as trailing zeros), so "61837.63" and "61837.63000000" are one
level; the text last received for a level is kept and returned unchanged, so output is Binance's own decimal text.

Each side is a dict key -> (price text, qty text) plus a sorted list of keys. Both lists keep the best level at
the END (bids ascending, asks as negated keys ascending) because most updates land near the top of the book and
an insert or delete near the end of a Python list moves few elements; see bench/bench_book.py for the figures
that chose this over sortedcontainers.SortedList.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence

from qs_common.depth import DepthSnapshot

SCALE_DIGITS = 8
SCALE = 10**SCALE_DIGITS

LevelText = Sequence[str]  # [price, qty] or (price, qty), decimal text


def scaled(text: str) -> int:
    """Exact integer value of a decimal text in 10^-8 units; ValueError naming the text if it has finer places."""
    dot = text.find(".")
    if dot < 0:
        return int(text) * SCALE
    places = len(text) - dot - 1
    if places == SCALE_DIGITS:  # Binance spot's usual form: one int() call, no padding
        return int(text[:dot] + text[dot + 1 :])
    frac = text[dot + 1 :].rstrip("0")
    if len(frac) > SCALE_DIGITS:
        raise ValueError(f"decimal {text!r} has more than {SCALE_DIGITS} significant decimal places")
    return int(text[:dot] or "0") * SCALE + int(frac.ljust(SCALE_DIGITS, "0") or "0")


def is_zero(qty: str) -> bool:
    """"0", "0.0", "0.00000000": a removal. Decimal text has only digits and one dot (checked at the wire)."""
    return not qty.strip("0.")


class _Side:
    """One side of the book. `sign` is +1 for bids, -1 for asks, so the best level has the largest key."""

    __slots__ = ("levels", "keys", "sign")

    def __init__(self, sign: int) -> None:
        self.levels: dict[int, tuple[str, str]] = {}
        self.keys: list[int] = []
        self.sign = sign

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()

    def load(self, levels: Iterable[LevelText]) -> None:
        self.clear()
        sign = self.sign
        book = self.levels
        for price, qty in levels:  # as a diff would: a later entry for the same price wins, 0 removes
            if is_zero(qty):
                book.pop(sign * scaled(price), None)
            else:
                book[sign * scaled(price)] = (price, qty)
        self.keys = sorted(book)

    def apply(self, levels: Iterable[LevelText]) -> None:
        book, keys, sign = self.levels, self.keys, self.sign
        for price, qty in levels:
            key = sign * scaled(price)
            if not qty.strip("0."):  # is_zero, inlined: this loop is the hot path
                if book.pop(key, None) is not None:
                    del keys[bisect_left(keys, key)]
            else:
                if key not in book:
                    insort(keys, key)
                book[key] = (price, qty)

    def best(self) -> tuple[str, str] | None:
        return self.levels[self.keys[-1]] if self.keys else None

    def top(self, n: int | None) -> list[list[str]]:
        """Best first, as [price, qty] text pairs; n None: every level."""
        keys = self.keys if n is None else self.keys[-n:] if n > 0 else []
        book = self.levels
        return [list(book[k]) for k in reversed(keys)]

    def scaled_levels(self) -> Iterator[tuple[int, int]]:
        """(price, qty) in 10^-8 units, best first: what the metrics walk."""
        book, sign = self.levels, self.sign
        for k in reversed(self.keys):
            yield sign * k, scaled(book[k][1])


class OrderBook:
    """The exact book of one symbol at update id `last_update_id` (0: nothing loaded yet)."""

    __slots__ = ("symbol", "bids", "asks", "last_update_id", "ts_event_ms")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = _Side(+1)
        self.asks = _Side(-1)
        self.last_update_id = 0
        self.ts_event_ms: int | None = None

    def load(self, snap: DepthSnapshot) -> None:
        """Replace the whole book with a snapshot (levels with quantity 0 are not levels)."""
        self.bids.load(snap.bids)
        self.asks.load(snap.asks)
        self.last_update_id = snap.last_update_id
        self.ts_event_ms = snap.ts_event_ms

    def apply(self, bids: Iterable[LevelText], asks: Iterable[LevelText], final_id: int, ts_event_ms: int) -> None:
        """Set each level's absolute quantity (0 removes it); the book is then at update id `final_id`."""
        self.bids.apply(bids)
        self.asks.apply(asks)
        self.last_update_id = final_id
        self.ts_event_ms = ts_event_ms

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = 0
        self.ts_event_ms = None

    def best_bid(self) -> tuple[str, str] | None:
        return self.bids.best()

    def best_ask(self) -> tuple[str, str] | None:
        return self.asks.best()

    def top(self, n: int | None = 50) -> tuple[list[list[str]], list[list[str]]]:
        """(bids descending, asks ascending), each at most n [price, qty] pairs of exact decimal text."""
        return self.bids.top(n), self.asks.top(n)

    def crossed(self) -> bool:
        """Best bid at or above best ask: never true of a correctly synchronised Binance book."""
        return bool(self.bids.keys and self.asks.keys and self.bids.keys[-1] >= -self.asks.keys[-1])

    def depth(self) -> tuple[int, int]:
        """(bid levels, ask levels)."""
        return len(self.bids.keys), len(self.asks.keys)

    def to_snapshot(self, n: int | None = None) -> DepthSnapshot:
        """The book as a snapshot (what a REST depth answer with limit n would hold), for resync tests and servers."""
        bids, asks = self.top(n)
        return DepthSnapshot(
            self.symbol,
            self.last_update_id,
            tuple((p, q) for p, q in bids),
            tuple((p, q) for p, q in asks),
            self.ts_event_ms,
        )
