"""Ticks to Redis Stream entries and back: the one encoder (ingest) and the one decoder (every consumer).

An entry carries the schema version, symbol, kind, exchange time (ms; absent for spot book tickers, which have
none), receive time (ns), the trade id or book update id, and the kind's fields as Binance's exact decimal text:

    trade: v=1 sym kind=trade ts=<T> ev=<E> recv=<ns> id=<t> p q m=<1 if buyer is maker>
    book:  v=1 sym kind=book [ts=<E>] recv=<ns> id=<u> b bq a aq

An entry without `v` is schema 1 (written before the version was). An entry of another version is not decoded
(it is reported as undecodable, so the consumer dead-letters it whole instead of misreading it).

`decode_batch` is the hot path: one pass over a batch of `(entry id, fields)` pairs into columns. Fields are a
dict (redis-py's parse, without decoding) or the reply's flat `[name, value, ...]` list (a consumer reading raw
replies, `worker.consumer.GroupConsumer(flat_fields=True)`); a flat list in the encoder's own field order is read
by position, any other is read as the dict it stands for, so both forms decode alike.
 It checks structure only (fields present, integers, UTF-8 text); what the
store or the engines can hold (ranges, decimal text) is theirs to check, so the decoder accepts e.g. a trade
id of 2**70 and lets the candle consumer say why it cannot be stored.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import hiredis

from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.models import BookTicker, Tick, Trade

SCHEMA_VERSION = "1"
_VERSION_B = SCHEMA_VERSION.encode()
# The field names of `encode`'s entries in its order (what a flat entry holds at its even positions).
_TRADE_NAMES = [b"v", b"sym", b"kind", b"ts", b"ev", b"recv", b"id", b"p", b"q", b"m"]
_BOOK_NAMES = [b"v", b"sym", b"kind", b"recv", b"id", b"b", b"bq", b"a", b"aq"]
_BOOK_NAMES_TS = [*_BOOK_NAMES, b"ts"]

Fields = Mapping[bytes, bytes] | list[bytes]  # a dict, or the flat [name, value, ...] of a raw reply


class DecodeError(ValueError):
    """A stream entry that is not a tick of this schema."""


def encode(tick: Tick) -> dict[str, str | int]:
    if isinstance(tick, Trade):
        return {
            "v": SCHEMA_VERSION,
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
        "v": SCHEMA_VERSION,
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
    """`XADD <stream> * <fields of encode(tick)>` as one RESP command, ready to write to a Redis socket.

    Byte for byte what `pack_xadd_fields(stream, encode(tick))` gives (tests/unit/test_codec_pack.py), written
    as one text template: ingest's hottest line after parsing (~1 µs a tick against ~5 µs through the dict and
    `hiredis.pack_command`). Text that is not ASCII (never from the parser's schema, whose texts are ASCII) takes
    the general path, since RESP lengths count bytes.
    """
    if not isinstance(tick, Trade):
        return pack_book_xadd(stream, tick.symbol, tick.update_id, tick.bid, tick.bid_qty, tick.ask, tick.ask_qty,
                              tick.ts_event_ms, tick.recv_ns)
    sym, ts, ev, recv, tid = tick.symbol, str(tick.ts_trade_ms), str(tick.ts_event_ms), str(tick.recv_ns), \
        str(tick.trade_id)
    p, q = tick.price, tick.qty
    head = _PREFIXES.get((stream, sym, "trade")) or _prefix(stream, sym, "trade")
    text = (f"{head}${len(ts)}\r\n{ts}\r\n$2\r\nev\r\n${len(ev)}\r\n{ev}\r\n"
            f"$4\r\nrecv\r\n${len(recv)}\r\n{recv}\r\n$2\r\nid\r\n${len(tid)}\r\n{tid}\r\n"
            f"$1\r\np\r\n${len(p)}\r\n{p}\r\n$1\r\nq\r\n${len(q)}\r\n{q}\r\n"
            f"$1\r\nm\r\n$1\r\n{1 if tick.buyer_is_maker else 0}\r\n")
    try:
        return text.encode("ascii")  # one pass: checks and encodes
    except UnicodeEncodeError:
        return pack_xadd_fields(stream, encode(tick))


def pack_book_xadd(
    stream: bytes, symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
    ts_event_ms: int | None, recv_ns: int,
) -> bytes:
    """`pack_xadd(stream, BookTicker(symbol, update_id, ...))` from the values themselves: ingest packs three frames
    in four, book tickers, straight from the decoded frame, with no BookTicker in between (ingest.parser.take_frame)."""
    recv, uid = str(recv_ns), str(update_id)
    if ts_event_ms is None:  # spot: no event time
        n, ts = 21, ""
    else:  # last, where `encode` adds it
        e = str(ts_event_ms)
        n, ts = 23, f"$2\r\nts\r\n${len(e)}\r\n{e}\r\n"
    head = _PREFIXES.get((stream, symbol, "book")) or _prefix(stream, symbol, "book")
    text = (f"*{n}{head}${len(recv)}\r\n{recv}\r\n$2\r\nid\r\n${len(uid)}\r\n{uid}\r\n"
            f"$1\r\nb\r\n${len(bid)}\r\n{bid}\r\n$2\r\nbq\r\n${len(bid_qty)}\r\n{bid_qty}\r\n"
            f"$1\r\na\r\n${len(ask)}\r\n{ask}\r\n$2\r\naq\r\n${len(ask_qty)}\r\n{ask_qty}\r\n{ts}")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return pack_xadd_fields(stream, encode(BookTicker(
            symbol, update_id, bid, bid_qty, ask, ask_qty, ts_event_ms, recv_ns)))


# What every XADD of one stream, symbol and kind repeats, up to the first field that varies: formatted once per
# symbol, not per tick (~0.3 µs of a book ticker's ~1.2 µs). Bounded: cleared when it would pass the bound.
_PREFIXES: dict[tuple[bytes, str, str], str] = {}
_PREFIXES_MAX = 8192


def _prefix(stream: bytes, symbol: str, kind: str) -> str:
    """The command's start up to the value of its first varying field: the trade time `ts` of a trade (after its
    count, fixed at 23 for trades), the receive time `recv` of a book ticker (whose count comes before it)."""
    if len(_PREFIXES) >= _PREFIXES_MAX:
        _PREFIXES.clear()
    head = _xadd_head(stream)
    sym = f"$3\r\nsym\r\n${len(symbol)}\r\n{symbol}\r\n"
    text = (f"*23{head}{sym}$4\r\nkind\r\n$5\r\ntrade\r\n$2\r\nts\r\n" if kind == "trade"
            else f"{head}{sym}$4\r\nkind\r\n$4\r\nbook\r\n$4\r\nrecv\r\n")
    _PREFIXES[(stream, symbol, kind)] = text
    return text


@functools.lru_cache(maxsize=16)
def _xadd_head(stream: bytes) -> str:
    """What follows the argument count: `XADD <stream> * v 1` (ingest writes to one or two streams)."""
    name = stream.decode("latin-1")  # RESP lengths count bytes: one character per byte
    return f"\r\n$4\r\nXADD\r\n${len(stream)}\r\n{name}\r\n$1\r\n*\r\n$1\r\nv\r\n$1\r\n{SCHEMA_VERSION}\r\n"


@dataclass(slots=True)
class TradeColumns:
    """The batch's trades, one list per field, in stream order."""

    entry_ids: list[bytes] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    prices: list[str] = field(default_factory=list)
    qtys: list[str] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # trade time T, ms
    event_times: list[int] = field(default_factory=list)  # event time E, ms
    recvs: list[int] = field(default_factory=list)  # ns
    makers: list[bool] = field(default_factory=list)  # the buyer was the maker (the taker sold)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class BookColumns:
    """The batch's top-of-book updates, one list per field, in stream order."""

    entry_ids: list[bytes] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # update id u
    bids: list[str] = field(default_factory=list)
    bid_qtys: list[str] = field(default_factory=list)
    asks: list[str] = field(default_factory=list)
    ask_qtys: list[str] = field(default_factory=list)
    times: list[int | None] = field(default_factory=list)  # event time, ms; None where the venue sends none
    recvs: list[int] = field(default_factory=list)  # ns

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class DecodedBatch:
    trades: TradeColumns = field(default_factory=TradeColumns)
    books: BookColumns = field(default_factory=BookColumns)
    # Stream order across kinds, for consumers that need it (as-of alignment): i >= 0 is trades[i], i < 0 is
    # books[~i]. Only filled when asked for.
    order: list[int] = field(default_factory=list)
    # Entries that are not ticks of this schema, with the reason: the consumer dead-letters them whole.
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)


def decode_batch(
    entries: Iterable[tuple[bytes, Fields]], books: bool = True, order: bool = False,
    times: bool = False,
) -> DecodedBatch:
    """Entries -> columns, in one pass.

    `books=False` skips book entries undecoded (a consumer of trades only). `order=True` also records the stream
    order across kinds. `times=True` also decodes the trades' receive and event times (`recvs`, `event_times`;
    empty otherwise): the candle consumer needs neither, and two more integers per trade are a tenth of its cost.
    Row by row on purpose: measured faster than picking raw columns and converting them with `map`.
    """
    out = DecodedBatch()
    if books or order or times:
        _decode_all(entries, out, books, order, times)
    else:  # the candle consumer's hot path, without a flag test per entry
        _decode_trades(entries, out)
    return out


def _decode_trades(entries: Iterable[tuple[bytes, Fields]], out: DecodedBatch) -> None:
    """Trades only (books skipped undecoded), no times, no order: `_decode_all` specialised for speed.

    A flat entry in the encoder's layout is read by position (the names checked all at once); anything else goes
    through `_decode_fields` (books skipped, no order, no times), the dict reading, which decides the same for the
    same fields."""
    tr = out.trades
    add_eid, add_sym, add_id, add_price = tr.entry_ids.append, tr.symbols.append, tr.ids.append, tr.prices.append
    add_qty, add_ts, add_maker = tr.qtys.append, tr.times.append, tr.makers.append
    names: dict[bytes, str] = {}  # symbol bytes -> text: a batch has few symbols, decoded once each
    version, trade_names, book_names, book_names_ts = _VERSION_B, _TRADE_NAMES, _BOOK_NAMES, _BOOK_NAMES_TS
    for entry_id, f in entries:
        if isinstance(f, list):
            kind = f[5] if len(f) > 5 else None
            if kind == b"book" and (f[0::2] == book_names or f[0::2] == book_names_ts):
                continue
            if kind == b"trade" and f[1] == version and f[0::2] == trade_names:
                raw_sym = f[3]
                try:
                    sym = names[raw_sym]
                    trade_id, ts = int(f[13]), int(f[7])
                    price, qty = f[15].decode(), f[17].decode()
                except (KeyError, ValueError):  # a new symbol, or a bad value: the general reading says which
                    _decode_fields(entry_id, fields_dict(f), out, False, False, False, names)
                    continue
                add_eid(entry_id)
                add_sym(sym)
                add_id(trade_id)
                add_price(price)
                add_qty(qty)
                add_ts(ts)
                add_maker(f[19] == b"1")
                continue
        _decode_fields(entry_id, fields_dict(f), out, False, False, False, names)


def fields_dict(fields: Fields) -> Mapping[bytes, bytes]:
    """The entry's fields as a dict (a flat list's later duplicate name wins, as in redis-py's parse)."""
    return dict(zip(fields[0::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields


def _decode_all(
    entries: Iterable[tuple[bytes, Fields]], out: DecodedBatch, books: bool, order: bool,
    times: bool,
) -> None:
    """Every kind, with the order and times when asked (the analytics consumer's reading).

    As in `_decode_trades`, a flat entry in the encoder's layout (a trade, a book with or without `ts`, the names
    checked all at once, so no name is there twice) is read by position; a bad value, a new symbol's first
    entry, another version or any other layout goes through `_decode_fields`, the dict reading, which decides
    the same for the same fields (tests/unit/test_codec_batch.py compares the two)."""
    tr, bk, seq = out.trades, out.books, out.order
    t_eid, t_sym, t_id, t_price = tr.entry_ids.append, tr.symbols.append, tr.ids.append, tr.prices.append
    t_qty, t_ts, t_maker, t_recv, t_ev = (tr.qtys.append, tr.times.append, tr.makers.append, tr.recvs.append,
                                          tr.event_times.append)
    b_eid, b_sym, b_id, b_bid, b_bq = bk.entry_ids.append, bk.symbols.append, bk.ids.append, bk.bids.append, \
        bk.bid_qtys.append
    b_ask, b_aq, b_ts, b_recv = bk.asks.append, bk.ask_qtys.append, bk.times.append, bk.recvs.append
    t_ids, b_ids, add_seq = tr.ids, bk.ids, seq.append
    names: dict[bytes, str] = {}  # symbol bytes -> text, filled by the dict reading (a batch has few symbols)
    version, trade_names, book_names, book_names_ts = _VERSION_B, _TRADE_NAMES, _BOOK_NAMES, _BOOK_NAMES_TS
    for entry_id, f in entries:
        if isinstance(f, list) and len(f) > 5 and f[1] == version:
            kind = f[5]
            if kind == b"book":
                keys = f[0::2]
                if books and keys in (book_names, book_names_ts):  # (skipped books go the dict way: rare)
                    try:  # a bad value or a new symbol: the dict reading says which
                        sym = names[f[3]]
                        update_id, recv = int(f[9]), int(f[7])
                        bid, bid_qty, ask, ask_qty = f[11].decode(), f[13].decode(), f[15].decode(), f[17].decode()
                        ts = int(f[19]) if len(keys) == 10 else None
                    except (KeyError, ValueError):
                        _decode_fields(entry_id, fields_dict(f), out, books, order, times, names)
                        continue
                    if order:
                        add_seq(~len(b_ids))
                    b_eid(entry_id)
                    b_sym(sym)
                    b_id(update_id)
                    b_bid(bid)
                    b_bq(bid_qty)
                    b_ask(ask)
                    b_aq(ask_qty)
                    b_ts(ts)
                    b_recv(recv)
                    continue
            elif kind == b"trade" and f[0::2] == trade_names:
                try:
                    sym = names[f[3]]
                    trade_id, ts_ms = int(f[13]), int(f[7])
                    price, qty = f[15].decode(), f[17].decode()
                    if times:
                        recv, ev = int(f[11]), int(f[9])
                except (KeyError, ValueError):
                    _decode_fields(entry_id, fields_dict(f), out, books, order, times, names)
                    continue
                if order:
                    add_seq(len(t_ids))
                t_eid(entry_id)
                t_sym(sym)
                t_id(trade_id)
                t_price(price)
                t_qty(qty)
                t_ts(ts_ms)
                t_maker(f[19] == b"1")
                if times:
                    t_recv(recv)
                    t_ev(ev)
                continue
        _decode_fields(entry_id, fields_dict(f), out, books, order, times, names)


def _decode_fields(
    entry_id: bytes, f: Mapping[bytes, bytes], out: DecodedBatch, books: bool, order: bool, times: bool,
    names: dict[bytes, str],
) -> None:
    """One entry as a dict, the fallback of both readings: a trade or (if `books`) a book is added, anything else
    refused."""
    kind = f.get(b"kind")
    if kind == b"trade":
        if f.get(b"v", _VERSION_B) != _VERSION_B:  # checked per kind: skipped books cost no lookup
            out.undecodable.append((entry_id, _unknown_version(f)))
            return
        tr = out.trades
        try:
            sym, trade_id, ts = _symbol(f[b"sym"], names), int(f[b"id"]), int(f[b"ts"])
            price, qty, maker = f[b"p"].decode(), f[b"q"].decode(), f[b"m"] == b"1"
            if times:
                recv, ev = int(f[b"recv"]), int(f[b"ev"])
        except (KeyError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            out.undecodable.append((entry_id, f"malformed trade entry: {exc!r}"))
            return
        if order:
            out.order.append(len(tr.ids))
        tr.entry_ids.append(entry_id)
        tr.symbols.append(sym)
        tr.ids.append(trade_id)
        tr.prices.append(price)
        tr.qtys.append(qty)
        tr.times.append(ts)
        tr.makers.append(maker)
        if times:
            tr.recvs.append(recv)
            tr.event_times.append(ev)
    elif kind == b"book":
        if books:
            _decode_book(entry_id, f, out.books, out.undecodable, out.order if order else None, names)
    else:
        out.undecodable.append((entry_id, _not_a_tick(f, kind)))


def _symbol(raw: bytes, names: dict[bytes, str]) -> str:
    """The symbol's text, decoded once per batch (UnicodeDecodeError, a ValueError, if it is not UTF-8)."""
    try:
        return names[raw]
    except KeyError:
        sym = names[raw] = raw.decode()
        return sym


def _not_a_tick(f: Mapping[bytes, bytes], kind: bytes | None) -> str:
    return _unknown_version(f) if f.get(b"v", _VERSION_B) != _VERSION_B else f"not a tick: kind {kind!r}"


def _unknown_version(f: Mapping[bytes, bytes]) -> str:
    return f"tick schema v={f[b'v'][:20]!r} unknown (this decoder reads v={SCHEMA_VERSION})"


def _decode_book(
    entry_id: bytes, f: Mapping[bytes, bytes], bk: BookColumns, bad: list[tuple[bytes, str]], seq: list[int] | None,
    names: dict[bytes, str],
) -> None:
    if f.get(b"v", _VERSION_B) != _VERSION_B:
        bad.append((entry_id, _unknown_version(f)))
        return
    try:
        sym, update_id, recv = _symbol(f[b"sym"], names), int(f[b"id"]), int(f[b"recv"])
        bid, bid_qty, ask, ask_qty = f[b"b"].decode(), f[b"bq"].decode(), f[b"a"].decode(), f[b"aq"].decode()
        ts_raw = f.get(b"ts")
        ts = int(ts_raw) if ts_raw is not None else None
    except (KeyError, ValueError) as exc:
        bad.append((entry_id, f"malformed book entry: {exc!r}"))
        return
    if seq is not None:
        seq.append(~len(bk.ids))
    bk.entry_ids.append(entry_id)
    bk.symbols.append(sym)
    bk.ids.append(update_id)
    bk.bids.append(bid)
    bk.bid_qtys.append(bid_qty)
    bk.asks.append(ask)
    bk.ask_qtys.append(ask_qty)
    bk.times.append(ts)
    bk.recvs.append(recv)


def trade_at(t: TradeColumns, i: int) -> Trade:
    return Trade(t.symbols[i], t.ids[i], t.prices[i], t.qtys[i], t.times[i], t.event_times[i], t.recvs[i], t.makers[i])


def book_at(b: BookColumns, i: int) -> BookTicker:
    return BookTicker(b.symbols[i], b.ids[i], b.bids[i], b.bid_qtys[i], b.asks[i], b.ask_qtys[i], b.times[i],
                      b.recvs[i])


def decode(fields: Mapping[bytes, bytes]) -> Tick:
    """One entry's fields (bytes -> bytes) -> its tick, through `decode_batch`; DecodeError if it is none."""
    batch = decode_batch([(b"", fields)], times=True)
    if batch.undecodable:
        raise DecodeError(batch.undecodable[0][1])
    return trade_at(batch.trades, 0) if batch.trades.ids else book_at(batch.books, 0)


# ---------------------------------------------------------------- depth (stream:depth, issue 11)
# Depth diffs and book snapshots go to their own stream, so candles and pair analytics never read them:
#
#     diff:     v=1 sym kind=depth ts=<E> recv=<ns> U=<first id> id=<u> [pu=<pu>] b=<levels> a=<levels>
#     snapshot: v=1 sym kind=snapshot [ts=<E>] recv=<ns> id=<lastUpdateId> b=<levels> a=<levels>
#
# Levels are a JSON array of [price, qty] strings: Binance's exact decimal text, never a float.

DEPTH_KIND = "depth"
SNAPSHOT_KIND = "snapshot"


def _levels_text(levels: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([[p, q] for p, q in levels], separators=(",", ":"))


def encode_depth(item: DepthDiff | DepthSnapshot, recv_ns: int = 0) -> dict[str, str | int]:
    """A depth diff or a snapshot as stream entry fields (`recv_ns`: a snapshot's receive time; diffs carry theirs)."""
    if isinstance(item, DepthDiff):
        entry: dict[str, str | int] = {
            "v": SCHEMA_VERSION, "sym": item.symbol, "kind": DEPTH_KIND, "ts": item.ts_event_ms,
            "recv": item.recv_ns, "U": item.first_id, "id": item.final_id,
        }
        if item.prev_final_id is not None:
            entry["pu"] = item.prev_final_id
    else:
        entry = {"v": SCHEMA_VERSION, "sym": item.symbol, "kind": SNAPSHOT_KIND, "recv": recv_ns,
                 "id": item.last_update_id}
        if item.ts_event_ms is not None:
            entry["ts"] = item.ts_event_ms
    entry["b"] = _levels_text(item.bids)
    entry["a"] = _levels_text(item.asks)
    return entry


def _levels(raw: bytes, name: str) -> tuple[tuple[str, str], ...]:
    doc = json.loads(raw)
    if not isinstance(doc, list) or not all(
        isinstance(lv, list) and len(lv) == 2 and isinstance(lv[0], str) and isinstance(lv[1], str) for lv in doc
    ):
        raise DecodeError(f"depth entry field {name!r} is not a list of [price, qty] texts")
    return tuple((p, q) for p, q in doc)


def decode_depth(fields: Mapping[bytes, bytes]) -> DepthDiff | DepthSnapshot:
    """One stream:depth entry -> its diff or snapshot; DecodeError naming what is wrong."""
    if fields.get(b"v", _VERSION_B) != _VERSION_B:
        raise DecodeError(_unknown_version(fields))
    kind = fields.get(b"kind")
    try:
        sym = fields[b"sym"].decode()
        update_id = int(fields[b"id"])
        bids, asks = _levels(fields[b"b"], "b"), _levels(fields[b"a"], "a")
        ts_raw = fields.get(b"ts")
        ts = int(ts_raw) if ts_raw is not None else None
        if kind == DEPTH_KIND.encode():
            pu_raw = fields.get(b"pu")
            if ts is None:
                raise DecodeError("depth diff without event time 'ts'")
            return DepthDiff(sym, int(fields[b"U"]), update_id, None if pu_raw is None else int(pu_raw),
                             bids, asks, ts, int(fields[b"recv"]))
        if kind == SNAPSHOT_KIND.encode():
            return DepthSnapshot(sym, update_id, bids, asks, ts)
    except DecodeError:
        raise
    except (KeyError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed {kind!r} entry: {exc!r}") from exc
    raise DecodeError(f"not a depth entry: kind {kind!r}")


def pack_xadd_fields(stream: bytes, fields: Mapping[str, str | int]) -> bytes:
    """`XADD <stream> * <fields>` as one RESP command."""
    args: list[bytes | str] = [b"XADD", stream, b"*"]
    for name, value in fields.items():
        args.append(name)
        args.append(value if isinstance(value, str) else str(value))
    return hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
