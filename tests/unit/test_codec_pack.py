"""The packed XADD that ingest writes is, byte for byte, the general encoding of `codec.encode`'s fields."""

from __future__ import annotations

import hiredis
from hypothesis import given
from hypothesis import strategies as st

from qs_common import codec
from qs_common.models import BookTicker, Trade

texts = st.text(min_size=0, max_size=40)  # any text: non-ASCII must take the general path, still exact
ints = st.integers(min_value=0, max_value=2**64)
streams = st.sampled_from([b"stream:ticks", b"s", "stream:ünï".encode()])


def reference(stream: bytes, fields: dict[str, str | int]) -> bytes:
    args: list[bytes | str] = [b"XADD", stream, b"*"]
    for name, value in fields.items():
        args += [name, value if isinstance(value, str) else str(value)]
    return hiredis.pack_command(tuple(args))  # type: ignore[arg-type]


@given(streams, texts, ints, texts, texts, ints, ints, ints, st.booleans())
def test_trade_packs_like_the_general_encoding(stream, sym, tid, p, q, ts, ev, recv, maker):
    tick = Trade(sym, tid, p, q, ts, ev, recv, maker)
    assert codec.pack_xadd(stream, tick) == reference(stream, codec.encode(tick))


@given(streams, texts, ints, texts, texts, texts, texts, st.none() | ints, ints)
def test_book_packs_like_the_general_encoding(stream, sym, uid, b, bq, a, aq, ts, recv):
    tick = BookTicker(sym, uid, b, bq, a, aq, ts, recv)
    assert codec.pack_xadd(stream, tick) == reference(stream, codec.encode(tick))


def test_a_recorded_style_trade_is_read_back_by_redis_as_encoded():
    # the RESP text itself, decoded by hiredis as Redis would parse the request: the same ten field pairs
    tick = Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", 1723161255342, 1723161255343, 17, True)
    reader = hiredis.Reader()
    reader.feed(codec.pack_xadd(b"stream:ticks", tick))
    args = reader.gets()
    assert args[:3] == [b"XADD", b"stream:ticks", b"*"]
    fields = dict(zip(args[3::2], args[4::2], strict=True))
    assert fields == {k.encode(): str(v).encode() for k, v in codec.encode(tick).items()}


@given(streams, texts, ints, texts, texts, texts, texts, st.none() | ints, ints)
def test_book_packed_from_its_values_is_the_ticks_packing(stream, sym, uid, b, bq, a, aq, ts, recv):
    # ingest packs book tickers from the decoded values (no BookTicker): the same bytes as from the tick
    packed = codec.pack_book_xadd(stream, sym, uid, b, bq, a, aq, ts, recv)
    assert packed == reference(stream, codec.encode(BookTicker(sym, uid, b, bq, a, aq, ts, recv)))


def test_the_per_symbol_prefixes_stay_exact_past_their_bound(monkeypatch):
    monkeypatch.setattr(codec, "_PREFIXES_MAX", 3)  # cleared again and again
    for i in range(20):
        for stream in (b"stream:ticks", b"stream:ticks:{BTCUSDT}"):
            trade = Trade(f"S{i % 7}", i, "1.5", "2", 10 + i, 11 + i, 12 + i, i % 2 == 0)
            book = BookTicker(f"S{i % 5}", i, "1", "2", "3", "4", None if i % 2 else i, 13 + i)
            for tick in (trade, book):
                assert codec.pack_xadd(stream, tick) == reference(stream, codec.encode(tick))
    assert len(codec._PREFIXES) <= 3
