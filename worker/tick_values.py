"""The numbers the analytics take from a decoded tick, checked: the live consumer and the warm-up read ticks
through these, so a replayed tick gives the engine exactly what the live one gave it."""

from __future__ import annotations

import math

from qs_common import codec
from worker.trade_checks import MAX_TIME_MS


def price(text: str, name: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):  # a NaN or inf would poison every rolling statistic after it
        raise ValueError(f"{name} {text[:40]!r} is not a finite number > 0")
    return value


def amount(text: str, name: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} {text[:40]!r} is not a finite number >= 0")
    return value


def event_time(ts: int) -> int:
    if not 0 < ts <= MAX_TIME_MS:  # a time far away would hold the as-of alignment of every later tick
        raise ValueError(f"time {ts} ms outside 1..{MAX_TIME_MS} (year 9999)")
    return ts


def trade(t: codec.TradeColumns, i: int) -> tuple[str, int, float, float]:
    """The trade's (symbol, time ms, price, qty); ValueError naming what it cannot use."""
    return t.symbols[i], event_time(t.times[i]), price(t.prices[i], "price"), amount(t.qtys[i], "qty")


def book_mid(b: codec.BookColumns, i: int) -> tuple[str, int, float]:
    """The book update's (symbol, time ms, mid); its receive time when the venue sent no event time."""
    bid, ask = price(b.bids[i], "bid"), price(b.asks[i], "ask")
    amount(b.bid_qtys[i], "bid qty")
    amount(b.ask_qtys[i], "ask qty")
    ts = b.times[i]
    return b.symbols[i], event_time(ts) if ts is not None else b.recvs[i] // 1_000_000, 0.5 * (bid + ask)
