"""Book metrics: mid, microprice, spread, imbalance, depth near the mid, the cost of a market order. Pure.

Computed exactly on the book's scaled integers (prices and quantities in 10^-8 units) with `Fraction` where a
division is needed, then rounded once to float: a metric is a number for charts and alert rules, while the
levels themselves stay exact decimal text.

Definitions (bb/ba best bid/ask prices, Qb/Qa their quantities, mid = (bb + ba) / 2):
- microprice = (bb * Qa + ba * Qb) / (Qa + Qb): leans towards the side whose queue is thinner.
- spread_bps = (ba - bb) / mid * 10^4.
- imbalance_n = (bid qty - ask qty) / (bid qty + ask qty) over the best n levels of each side, in [-1, 1].
- depth within x bps: bid levels priced >= mid * (1 - x/10^4), ask levels <= mid * (1 + x/10^4), summed as base
  quantity and as quote notional (price * qty).
- cost_bps of a market order of quote notional N: walk the asks (buy) or bids (sell) until N is filled; the
  average fill price against the mid, in bps, always >= 0 (it includes the half spread). None when the side
  holds less than N.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from itertools import islice
from typing import Literal

from qs_analytics.book.book import SCALE, OrderBook

IMBALANCE_LEVELS = (1, 5, 10)
DEPTH_BANDS_BPS = (5, 10, 25)
_BPS = 10_000


def _top(book: OrderBook) -> tuple[int, int, int, int] | None:
    """(bb, Qb, ba, Qa) scaled, or None when a side is empty."""
    bid = next(book.bids.scaled_levels(), None)
    ask = next(book.asks.scaled_levels(), None)
    if bid is None or ask is None:
        return None
    return bid[0], bid[1], ask[0], ask[1]


def imbalance(book: OrderBook, n: int) -> float | None:
    bid = sum(q for _, q in islice(book.bids.scaled_levels(), n))
    ask = sum(q for _, q in islice(book.asks.scaled_levels(), n))
    total = bid + ask
    return None if total == 0 else float(Fraction(bid - ask, total))


def depth_within(book: OrderBook, bps: int) -> dict[str, float] | None:
    """Base and quote depth of each side within `bps` of the mid; None when a side is empty."""
    bands = depth_bands(book, (bps,))
    return None if bands is None else bands[bps]


def depth_bands(book: OrderBook, bands_bps: tuple[int, ...]) -> dict[int, dict[str, float]] | None:
    """`depth_within` for several bands in one walk of each side (a 25 bps band of BTCUSDT is ~1,000 levels)."""
    top = _top(book)
    if top is None:
        return None
    mid2 = top[0] + top[2]  # 2 * mid: with the factor 2 * 10^4 the band tests stay in integers
    bands = sorted(set(bands_bps))
    out: dict[int, dict[str, float]] = {bps: {} for bps in bands}
    for side, sign in (("bid", 1), ("ask", -1)):
        # band x holds bids p >= mid * (1 - x/10^4) and asks p <= mid * (1 + x/10^4): as exact integer bounds on
        # sign * p (ceiling for bids, floor for asks), narrowest band first
        limits = [-((-mid2 * (_BPS - bps)) // (2 * _BPS)) if sign > 0 else -(mid2 * (_BPS + bps) // (2 * _BPS))
                  for bps in bands]
        base = quote = i = 0
        n = len(bands)
        for p, q in (book.bids if sign > 0 else book.asks).scaled_levels():
            while sign * p < limits[i]:
                out[bands[i]][f"{side}_base"], out[bands[i]][f"{side}_quote"] = base / SCALE, quote / SCALE**2
                i += 1
                if i == n:
                    break
            if i == n:
                break
            base += q
            quote += p * q
        for bps in bands[i:]:  # the side ended inside these bands
            out[bps][f"{side}_base"], out[bps][f"{side}_quote"] = base / SCALE, quote / SCALE**2
    return out


def market_cost_bps(book: OrderBook, side: Literal["buy", "sell"], notional: int | str | Decimal) -> float | None:
    """Cost in bps against the mid of buying (walking the asks) or selling (the bids) `notional` of quote."""
    n = Fraction(notional)  # exact for int, Decimal and decimal text
    if n <= 0:
        raise ValueError(f"notional {notional!r} is not positive")
    top = _top(book)
    if top is None:
        return None
    mid = Fraction(top[0] + top[2], 2 * SCALE)
    remaining = n * SCALE * SCALE  # quote notional in the units of price * qty
    base = 0  # in qty units (10^-8); whole levels stay integers, only the last partial fill is a Fraction
    for p, q in (book.asks if side == "buy" else book.bids).scaled_levels():
        level = p * q
        if level >= remaining:
            avg = n * SCALE / (base + remaining / p)
            cost = avg / mid - 1 if side == "buy" else 1 - avg / mid
            return float(cost * _BPS)
        remaining -= level
        base += q
    return None


def book_metrics(
    book: OrderBook,
    notionals: tuple[int | str | Decimal, ...] = (),
    levels: tuple[int, ...] = IMBALANCE_LEVELS,
    bands_bps: tuple[int, ...] = DEPTH_BANDS_BPS,
) -> dict[str, float]:
    """Every metric of one book as a flat dict (the shape alert rules and the symbol statistics take); a metric
    that is undefined (empty side, too little depth) is left out rather than set to NaN."""
    top = _top(book)
    if top is None:
        return {}
    bb, qb, ba, qa = top
    mid2 = bb + ba
    out: dict[str, float] = {
        "mid": mid2 / (2 * SCALE),
        "microprice": float(Fraction(bb * qa + ba * qb, (qa + qb) * SCALE)),
        "spread_bps": float(Fraction((ba - bb) * 2 * _BPS, mid2)),
    }
    for n in levels:
        imb = imbalance(book, n)
        if imb is not None:
            out[f"imbalance_{n}"] = imb
    for bps, depth in (depth_bands(book, bands_bps) or {}).items():
        for key, value in depth.items():
            out[f"depth_{bps}bps_{key}"] = value
    for notional in notionals:
        for side in ("buy", "sell"):
            cost = market_cost_bps(book, side, notional)
            if cost is not None:
                out[f"cost_{side}_{notional}_bps"] = cost
    return out
