"""Ticks to Redis Stream entries and back.

An entry carries the symbol, kind, exchange time (ms; absent for spot book tickers, which have none),
receive time (ns), the trade id or book update id, and the kind's fields as Binance's exact decimal text:

    trade: sym kind=trade ts=<T> ev=<E> recv=<ns> id=<t> p q m=<1 if buyer is maker>
    book:  sym kind=book [ts=<E>] recv=<ns> id=<u> b bq a aq
"""

from __future__ import annotations

from collections.abc import Mapping

import hiredis

from qs_common.models import BookTicker, Tick, Trade

SCHEMA_VERSION = "1"


class DecodeError(ValueError):
    """A stream entry that is not a tick of this schema."""


def encode(tick: Tick) -> dict[str, str | int]:
    if isinstance(tick, Trade):
        return {
            "sym": tick.symbol,
            "kind": "trade",
            "ts": tick.ts_trade_ms,
            "ev": tick.ts_event_ms,
            "recv": tick.recv_ns,
            "id": tick.trade_id,
            "p": tick.price,
            "q": tick.qty,
            "m": 1 if tick.buyer_is_maker else 0,
        }
    entry: dict[str, str | int] = {
        "sym": tick.symbol,
        "kind": "book",
        "recv": tick.recv_ns,
        "id": tick.update_id,
        "b": tick.bid,
        "bq": tick.bid_qty,
        "a": tick.ask,
        "aq": tick.ask_qty,
    }
    if tick.ts_event_ms is not None:
        entry["ts"] = tick.ts_event_ms
    return entry


def pack_xadd(stream: bytes, tick: Tick) -> bytes:
    """`XADD <stream> * <fields of encode(tick)>` as one RESP command, ready to write to a Redis socket."""
    args: list[bytes | str] = [b"XADD", stream, b"*"]
    for name, value in encode(tick).items():
        args.append(name)
        args.append(value if isinstance(value, str) else str(value))
    return hiredis.pack_command(tuple(args))  # type: ignore[arg-type]


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str:
    return fields[name].decode()


def decode(fields: Mapping[bytes, bytes]) -> Tick:
    """Entry fields as redis-py returns them without decoding (bytes -> bytes)."""
    try:
        kind = fields[b"kind"]
        if kind == b"trade":
            return Trade(
                symbol=_text(fields, b"sym"),
                trade_id=int(fields[b"id"]),
                price=_text(fields, b"p"),
                qty=_text(fields, b"q"),
                ts_trade_ms=int(fields[b"ts"]),
                ts_event_ms=int(fields[b"ev"]),
                recv_ns=int(fields[b"recv"]),
                buyer_is_maker=fields[b"m"] == b"1",
            )
        if kind == b"book":
            ts = fields.get(b"ts")
            return BookTicker(
                symbol=_text(fields, b"sym"),
                update_id=int(fields[b"id"]),
                bid=_text(fields, b"b"),
                bid_qty=_text(fields, b"bq"),
                ask=_text(fields, b"a"),
                ask_qty=_text(fields, b"aq"),
                ts_event_ms=int(ts) if ts is not None else None,
                recv_ns=int(fields[b"recv"]),
            )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"bad tick entry: {exc!r}") from exc
    raise DecodeError(f"unknown tick kind {kind!r}")
