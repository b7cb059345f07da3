"""The local book (qs_analytics.book.book) against a plain dict of Decimal prices, and its exact decimal keys."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qs_analytics.book.book import OrderBook, is_zero, scaled
from qs_common.depth import DepthSnapshot


@st.composite
def decimal_text(draw, max_units: int = 10**9) -> str:
    """A decimal text as Binance may write it: the same value with or without trailing zeros (1.5, 1.50000000)."""
    units = draw(st.integers(0, max_units))  # in 10^-8
    whole, frac = divmod(units, 10**8)
    frac_text = f"{frac:08d}".rstrip("0")
    places = draw(st.integers(len(frac_text), 8))
    zeros = draw(st.integers(0, 2)) if places == 8 else 0
    if places == 0:
        return str(whole)
    return f"{whole}.{frac_text.ljust(places, '0')}{'0' * zeros}"


prices = decimal_text(max_units=3_000)  # few distinct prices: updates hit existing levels often
quantities = st.one_of(st.sampled_from(["0", "0.0", "0.00000000"]), decimal_text())
levels = st.lists(st.tuples(prices, quantities), max_size=12)


class Reference:
    """The obvious book: Decimal price -> the last (price text, qty text); quantity 0 deletes."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"b": {}, "a": {}}

    def apply(self, side: str, lv: list[tuple[str, str]]) -> None:
        book = self.sides[side]
        for p, q in lv:
            if Decimal(q) == 0:
                book.pop(Decimal(p), None)
            else:
                book[Decimal(p)] = (p, q)

    def top(self, side: str, n: int | None) -> list[list[str]]:
        book = self.sides[side]
        keys = sorted(book, reverse=side == "b")
        return [list(book[k]) for k in keys[:n]]


@settings(max_examples=150, deadline=None)
@given(snapshot=st.tuples(levels, levels), diffs=st.lists(st.tuples(levels, levels), max_size=25),
       n=st.one_of(st.none(), st.integers(0, 8)))
def test_book_equals_a_plain_dict_reference(snapshot, diffs, n):
    book, ref = OrderBook("BTCUSDT"), Reference()
    book.load(DepthSnapshot("BTCUSDT", 7, tuple(snapshot[0]), tuple(snapshot[1])))
    ref.apply("b", snapshot[0])
    ref.apply("a", snapshot[1])
    for i, (bids, asks) in enumerate(diffs):
        book.apply(bids, asks, 8 + i, 1_700_000_000_000 + i)
        ref.apply("b", bids)
        ref.apply("a", asks)
        assert book.top(n) == (ref.top("b", n), ref.top("a", n))
    assert book.top(None) == (ref.top("b", None), ref.top("a", None))
    assert book.depth() == (len(ref.sides["b"]), len(ref.sides["a"]))
    best = ref.top("b", 1), ref.top("a", 1)
    assert book.best_bid() == (tuple(best[0][0]) if best[0] else None)
    assert book.best_ask() == (tuple(best[1][0]) if best[1] else None)
    assert book.last_update_id == 7 + len(diffs)
    # a snapshot of the book rebuilds the same book
    again = OrderBook("BTCUSDT")
    again.load(book.to_snapshot())
    assert again.top(None) == book.top(None) and again.last_update_id == book.last_update_id


@given(decimal_text(max_units=10**20))
def test_scaled_is_the_exact_value_in_units_of_1e_8(text):
    assert scaled(text) == Decimal(text) * 10**8
    assert is_zero(text) == (Decimal(text) == 0)


def test_one_price_written_two_ways_is_one_level_and_keeps_the_latest_text():
    book = OrderBook("BTCUSDT")
    book.apply([("61837.63000000", "1.00000000")], [], 1, 1)
    book.apply([("61837.63", "2.5")], [], 2, 2)
    assert book.top() == ([["61837.63", "2.5"]], [])
    book.apply([("61837.630", "0.000")], [], 3, 3)
    assert book.top() == ([], []) and book.depth() == (0, 0)


def test_sides_are_ordered_best_first_and_removing_a_missing_level_is_harmless():
    book = OrderBook("BTCUSDT")
    book.load(DepthSnapshot("BTCUSDT", 10, (("99", "1"), ("101", "1"), ("100", "0")), (("103", "1"), ("102", "2"))))
    assert book.top() == ([["101", "1"], ["99", "1"]], [["102", "2"], ["103", "1"]])  # a 0 in a snapshot is no level
    book.apply([("98", "0")], [("104", "0")], 11, 5)
    assert book.top(1) == ([["101", "1"]], [["102", "2"]]) and book.depth() == (2, 2)
    assert not book.crossed()
    book.apply([("102", "1")], [], 12, 6)
    assert book.crossed()


@pytest.mark.parametrize("bad", ["1.123456789", "0.000000001"])
def test_finer_than_1e_8_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        scaled(bad)
    book = OrderBook("BTCUSDT")
    with pytest.raises(ValueError, match="decimal places"):
        book.apply([(bad, "1")], [], 1, 1)
