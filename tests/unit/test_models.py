"""The tick dataclasses keep every dataclass behaviour with their faster `__init__` (qs_common/models.py):
the same as a plain frozen slots dataclass of the same fields, which is what they were."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from typing import Literal

import pytest

from qs_common.models import BookTicker, Trade


@dataclass(frozen=True, slots=True)
class RefTrade:
    symbol: str
    trade_id: int
    price: str
    qty: str
    ts_trade_ms: int
    ts_event_ms: int
    recv_ns: int
    buyer_is_maker: bool
    kind: Literal["trade"] = "trade"


@dataclass(frozen=True, slots=True)
class RefBook:
    symbol: str
    update_id: int
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    ts_event_ms: int | None
    recv_ns: int
    kind: Literal["book"] = "book"


TRADE_ARGS = ("BTCUSDT", 17, "64000.10", "0.002", 1_700_000_000_000, 1_700_000_000_001, 5, True)
BOOK_ARGS = ("ETHUSDT", 9, "2683.80", "3.0292", "2683.81", "31.4395", None, 6)
CASES = [(Trade, RefTrade, TRADE_ARGS), (BookTicker, RefBook, BOOK_ARGS)]


@pytest.mark.parametrize(("cls", "ref", "args"), CASES)
def test_same_fields_values_and_defaults_as_a_plain_dataclass(cls: type, ref: type, args: tuple) -> None:
    tick, plain = cls(*args), ref(*args)
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(ref)]
    assert dataclasses.astuple(tick) == dataclasses.astuple(plain)
    assert dataclasses.asdict(tick) == dataclasses.asdict(plain)
    assert repr(tick) == repr(plain).replace(ref.__name__, cls.__name__, 1)
    assert cls.__match_args__ == ref.__match_args__


@pytest.mark.parametrize(("cls", "ref", "args"), CASES)
def test_keywords_equality_hash_and_copies(cls: type, ref: type, args: tuple) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    tick = cls(*args)
    by_name = cls(**dict(zip(names, args, strict=False)))
    assert by_name == tick and hash(by_name) == hash(tick)
    assert tick != cls(*args[:-1], args[-1] + 1)  # the last positional field (recv_ns) differs
    assert tick != ref(*args)  # another class with the same values is not equal, as with dataclasses
    assert dataclasses.replace(tick, symbol="XRPUSDT").symbol == "XRPUSDT"
    assert pickle.loads(pickle.dumps(tick)) == tick
    with pytest.raises(TypeError):
        cls(*args[:-1])  # a field missing


@pytest.mark.parametrize(("cls", "ref", "args"), CASES)
def test_immutable(cls: type, ref: type, args: tuple) -> None:
    tick = cls(*args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tick.symbol = "XRPUSDT"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del tick.symbol
    with pytest.raises((AttributeError, TypeError)):
        tick.extra = 1  # slots: no other attribute
    assert tick.symbol == args[0]
