"""Book metrics (qs_analytics.book.metrics): a hand-worked book, and random books against a Fraction reference that
reads the decimal text directly (not the book's scaled integers)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qs_analytics.book.book import OrderBook
from qs_analytics.book.metrics import book_metrics, depth_within, imbalance, market_cost_bps
from qs_common.depth import DepthSnapshot


def make(bids, asks) -> OrderBook:
    book = OrderBook("BTCUSDT")
    book.load(DepthSnapshot("BTCUSDT", 1, tuple(bids), tuple(asks)))
    return book


HAND = make([("100", "2"), ("99", "3")], [("101.00", "1"), ("102", "4")])


def test_hand_worked_book():
    m = book_metrics(HAND, notionals=(303, "1000"), bands_bps=(100,), levels=(1, 5))
    assert m["mid"] == 100.5
    assert m["spread_bps"] == pytest.approx(1 / 100.5 * 1e4, rel=1e-15)
    assert m["microprice"] == pytest.approx(302 / 3, rel=1e-15)  # (100 * 1 + 101 * 2) / 3: leans to the thin ask
    assert m["imbalance_1"] == pytest.approx(1 / 3) and m["imbalance_5"] == 0
    # ±100 bps of 100.5 is [99.495, 101.505]: bid 100 and ask 101 only
    assert (m["depth_100bps_bid_base"], m["depth_100bps_bid_quote"]) == (2, 200)
    assert (m["depth_100bps_ask_base"], m["depth_100bps_ask_quote"]) == (1, 101)
    # buy 303: 101 at 101, then 202 of quote at 102 -> 152/51 base, average 15453/152
    assert m["cost_buy_303_bps"] == pytest.approx((15453 / 152 / 100.5 - 1) * 1e4, rel=1e-12)
    # sell 303: 200 at 100 (2 base), 103 at 99 -> average 303 / (2 + 103/99)
    assert m["cost_sell_303_bps"] == pytest.approx((1 - 303 / (2 + 103 / 99) / 100.5) * 1e4, rel=1e-12)
    assert "cost_buy_1000_bps" not in m and "cost_sell_1000_bps" not in m  # each side holds less than 1000


def test_empty_or_one_sided_book_has_no_metrics_and_bad_notional_is_named():
    assert book_metrics(OrderBook("BTCUSDT"), notionals=(100,)) == {}
    one = make([("100", "1")], [])
    assert book_metrics(one, notionals=(100,)) == {}
    assert imbalance(one, 5) == 1.0 and depth_within(one, 5) is None and market_cost_bps(one, "sell", 50) is None
    with pytest.raises(ValueError, match="notional -5"):
        market_cost_bps(HAND, "buy", -5)


def _ref_cost(levels, n, mid, side):
    remaining, base = n, Fraction(0)
    for p, q in levels:
        if p * q >= remaining:
            base += remaining / p
            avg = n / base
            return (avg / mid - 1 if side == "buy" else 1 - avg / mid) * 10_000
        remaining -= p * q
        base += q
    return None


prices = st.integers(1, 400).map(lambda c: Fraction(c, 100) + 1000)
qtys = st.integers(1, 10**9).map(lambda u: Fraction(u, 10**8))


def text(x: Fraction) -> str:
    units = x * 10**8
    assert units.denominator == 1
    return f"{units.numerator // 10**8}.{units.numerator % 10**8:08d}"


@settings(max_examples=80, deadline=None)
@given(bid_p=st.lists(prices, min_size=1, max_size=30, unique=True),
       ask_p=st.lists(prices, min_size=1, max_size=30, unique=True),
       data=st.data())
def test_metrics_match_a_fraction_reference(bid_p, ask_p, data):
    top_bid = max(bid_p)
    ask_p = [p + top_bid - min(ask_p) + Fraction(1, 100) for p in ask_p]  # uncrossed
    bids = sorted(((p, data.draw(qtys)) for p in bid_p), reverse=True)
    asks = sorted((p, data.draw(qtys)) for p in ask_p)
    book = make([(text(p), text(q)) for p, q in bids], [(text(p), text(q)) for p, q in asks])
    notional = data.draw(st.integers(1, 2_000_000))
    m = book_metrics(book, notionals=(notional,))
    (bb, qb), (ba, qa) = bids[0], asks[0]
    mid = (bb + ba) / 2
    assert m["mid"] == float(mid)
    assert m["microprice"] == float((bb * qa + ba * qb) / (qa + qb))
    assert m["spread_bps"] == float((ba - bb) / mid * 10_000)
    for n in (1, 5, 10):
        b, a = sum(q for _, q in bids[:n]), sum(q for _, q in asks[:n])
        assert m[f"imbalance_{n}"] == float((b - a) / (b + a))
    for bps in (5, 10, 25):
        near_b = [(p, q) for p, q in bids if p >= mid * (1 - Fraction(bps, 10_000))]
        near_a = [(p, q) for p, q in asks if p <= mid * (1 + Fraction(bps, 10_000))]
        assert m[f"depth_{bps}bps_bid_base"] == float(sum(q for _, q in near_b))
        assert m[f"depth_{bps}bps_ask_quote"] == float(sum(p * q for p, q in near_a))
    for side, levels in (("buy", asks), ("sell", bids)):
        ref = _ref_cost(levels, notional, mid, side)
        key = f"cost_{side}_{notional}_bps"
        if ref is None:
            assert key not in m
        else:
            assert m[key] == pytest.approx(float(ref), rel=1e-12, abs=1e-12) and m[key] >= 0


def test_a_level_exactly_on_the_band_edge_is_inside():
    book = make([("99.9", "1"), ("99.5", "2"), ("99.49999999", "4")],
                [("100.1", "1"), ("100.5", "2"), ("100.50000001", "4")])
    # mid 100: ±50 bps is [99.5, 100.5] inclusive; one unit of 10^-8 further is outside
    d = depth_within(book, 50)
    assert d == {"bid_base": 3.0, "bid_quote": 298.9, "ask_base": 3.0, "ask_quote": 301.1}
    # exact sums, rounded once: 298.9 + 397.99999996 and 301.1 + 402.00000004
    assert depth_within(book, 1_000) == {"bid_base": 7.0, "bid_quote": 696.89999996,
                                         "ask_base": 7.0, "ask_quote": 703.10000004}
