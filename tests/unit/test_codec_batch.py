"""The column-wise tick decoder every consumer uses (qs_common.codec.decode_batch)."""

from __future__ import annotations

from qs_common import codec
from qs_common.models import BookTicker, Trade

TRADE = Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", 1723161255342, 1723161255343, 17, True)
TRADE2 = Trade("ETHUSDT", 9, "2500.5", "1", 1723161255400, 1723161255401, 18, False)
BOOK = BookTicker("BTCUSDT", 50093239212, "61837.63", "3.78826", "61837.64", "1.54698", None, 99)
BOOK_TS = BookTicker("ETHUSDT", 5, "1", "2", "3", "4", 1723161255343, 100)


def raw(tick: Trade | BookTicker, drop: str = "", **extra: object) -> dict[bytes, bytes]:
    fields = {k: v for k, v in codec.encode(tick).items() if k != drop} | extra
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_columns_in_stream_order_across_kinds():
    entries = [(b"1-0", raw(TRADE)), (b"2-0", raw(BOOK)), (b"3-0", raw(TRADE2)), (b"4-0", raw(BOOK_TS))]
    batch = codec.decode_batch(entries, order=True, times=True)
    t, b = batch.trades, batch.books
    assert t.entry_ids == [b"1-0", b"3-0"] and t.symbols == ["BTCUSDT", "ETHUSDT"] and t.ids == [3735683259, 9]
    assert t.prices == ["61837.63000000", "2500.5"] and t.qtys == ["0.02000000", "1"]  # exact text
    assert t.times == [1723161255342, 1723161255400] and t.event_times == [1723161255343, 1723161255401]
    assert t.recvs == [17, 18] and t.makers == [True, False]
    assert b.entry_ids == [b"2-0", b"4-0"] and b.times == [None, 1723161255343] and b.recvs == [99, 100]
    assert b.bids == ["61837.63", "1"] and b.ask_qtys == ["1.54698", "4"] and b.ids == [50093239212, 5]
    assert batch.order == [0, ~0, 1, ~1] and not batch.undecodable
    assert [codec.trade_at(t, i) for i in range(2)] == [TRADE, TRADE2]
    assert [codec.book_at(b, i) for i in range(2)] == [BOOK, BOOK_TS]


def test_trades_only_skips_books_and_receive_times():
    batch = codec.decode_batch([(b"1-0", raw(BOOK)), (b"2-0", raw(TRADE))], books=False)
    assert batch.trades.ids == [TRADE.trade_id] and len(batch.books) == 0 and batch.order == []
    assert batch.trades.recvs == [] and batch.trades.event_times == []


def test_entries_without_a_version_are_schema_1_and_other_versions_are_refused():
    old = raw(TRADE, drop="v")
    assert b"v" not in old and raw(TRADE)[b"v"] == b"1"
    future = raw(TRADE2, v="2")
    batch = codec.decode_batch([(b"1-0", old), (b"2-0", future)], times=True)
    assert batch.trades.ids == [TRADE.trade_id]
    assert batch.undecodable == [(b"2-0", "tick schema v=b'2' unknown (this decoder reads v=1)")]


def test_undecodable_entries_are_named_with_a_reason_and_the_rest_decoded():
    entries = [
        (b"1-0", raw(TRADE)),
        (b"2-0", raw(TRADE, drop="p")),  # missing field
        (b"3-0", raw(TRADE, id="12x")),  # not an integer
        (b"4-0", raw(TRADE, sym=b"\xff\xfeUSDT")),  # not UTF-8
        (b"5-0", {b"kind": b"depth", b"sym": b"X"}),  # not a tick
        (b"6-0", raw(BOOK, drop="aq")),
        (b"7-0", raw(TRADE2)),
        (b"8-0", raw(BOOK_TS)),
    ]
    batch = codec.decode_batch(entries, order=True, times=True)
    assert batch.trades.entry_ids == [b"1-0", b"7-0"] and batch.books.entry_ids == [b"8-0"]
    assert batch.order == [0, 1, ~0]
    reasons = dict(batch.undecodable)
    assert set(reasons) == {b"2-0", b"3-0", b"4-0", b"5-0", b"6-0"}
    assert "malformed trade entry" in reasons[b"2-0"] and "b'p'" in reasons[b"2-0"]
    assert "malformed trade entry" in reasons[b"3-0"] and "12x" in reasons[b"3-0"]
    assert "UnicodeDecodeError" in reasons[b"4-0"]
    assert reasons[b"5-0"] == "not a tick: kind b'depth'"
    assert "malformed book entry" in reasons[b"6-0"] and "b'aq'" in reasons[b"6-0"]


def test_structure_only_ranges_are_the_consumers_to_check():
    # the candle consumer names why a trade id of 2**70 or a negative time cannot be stored
    batch = codec.decode_batch([(b"1-0", raw(TRADE, id=2**70, ts=-5))])
    assert batch.trades.ids == [2**70] and batch.trades.times == [-5] and not batch.undecodable


def test_the_trades_only_path_decodes_trades_as_the_general_one():
    entries = [
        (b"1-0", raw(TRADE)), (b"2-0", raw(TRADE, drop="p")), (b"3-0", raw(TRADE, id="12x")),
        (b"4-0", raw(TRADE, sym=b"\xff\xfeUSDT")), (b"5-0", {b"kind": b"depth", b"sym": b"X"}),
        (b"6-0", raw(BOOK, drop="aq")), (b"7-0", raw(TRADE2)), (b"8-0", raw(TRADE2, v="9")),
        (b"9-0", raw(TRADE, drop="v")),
    ]
    lean, full = codec.decode_batch(entries, books=False), codec.decode_batch(entries, order=True)
    for name in ("entry_ids", "symbols", "ids", "prices", "qtys", "times", "makers"):
        assert getattr(lean.trades, name) == getattr(full.trades, name), name
    assert lean.trades.entry_ids == [b"1-0", b"7-0", b"9-0"]
    book_reasons = [r for r in full.undecodable if r[0] == b"6-0"]
    assert sorted(lean.undecodable) == sorted(r for r in full.undecodable if r[0] != b"6-0") and book_reasons


def flat(fields: dict[bytes, bytes]) -> list[bytes]:
    """The fields as a raw XREADGROUP reply gives them (GroupConsumer(flat_fields=True))."""
    return [x for pair in fields.items() for x in pair]


MIXED = [
    raw(TRADE), raw(BOOK), raw(TRADE2), raw(BOOK_TS), raw(TRADE, drop="p"), raw(TRADE, id="12x"),
    raw(TRADE, sym=b"\xff\xfeUSDT"), {b"kind": b"depth", b"sym": b"X"}, raw(BOOK, drop="aq"), raw(TRADE2, v="9"),
    raw(TRADE, drop="v"), raw(BOOK, v="2"), raw(TRADE, id=2**70, ts=-5), raw(TRADE, m="0"), raw(TRADE, p=b"\xff"),
    raw(TRADE, sym="NEWUSDT"), raw(BOOK, kind="depth"), {}, {b"kind": b"trade"}, raw(TRADE, extra="x"),
    # bad values in the encoder's layout (read by position until the value fails), in every field read
    raw(TRADE, recv="r"), raw(TRADE, ev="e"), raw(TRADE, ts="t"), raw(TRADE, q=b"\xff"), raw(BOOK, id="i"),
    raw(BOOK, recv="r"), raw(BOOK_TS, ts="t"), raw(BOOK, b=b"\xff"), raw(BOOK, bq=b"\xff"), raw(BOOK, a=b"\xff"),
    raw(BOOK_TS, aq=b"\xff"), raw(BOOK, sym=b"\xff"), raw(BOOK_TS, sym="NEWUSDT"), raw(BOOK, drop="v"),
    raw(BOOK_TS, extra="x"), raw(TRADE2), raw(BOOK_TS), raw(BOOK),
]
# Every way decode_batch is called with: the candle reading, the analytics one, and the rest of the flags.
FLAGS = [{"books": False}, {"order": True, "times": True}, {}, {"order": True}, {"times": True},
         {"books": False, "order": True, "times": True}]


def test_flat_fields_decode_like_the_dicts_they_stand_for():
    """Flat lists (the encoder's layout, read by position, and any other layout) decode as their dicts do."""
    as_dicts = [(f"{i}-0".encode(), f) for i, f in enumerate(MIXED)]
    as_flat = [(eid, flat(f)) for eid, f in as_dicts]
    reordered = [(eid, flat(dict(reversed(list(f.items()))))) for eid, f in as_dicts]  # not the encoder's order
    for kwargs in FLAGS:
        want = codec.decode_batch(as_dicts, **kwargs)
        for form in (as_flat, reordered):
            got = codec.decode_batch(form, **kwargs)
            assert got.trades == want.trades and got.books == want.books and got.order == want.order
            assert got.undecodable == want.undecodable, kwargs
    ids = codec.decode_batch(as_flat, books=False).trades.entry_ids
    # an extra field is ignored; the candle reading does not read the times (20, 21)
    assert ids == [b"0-0", b"2-0", b"10-0", b"12-0", b"13-0", b"15-0", b"19-0", b"20-0", b"21-0", b"35-0"]
    full = codec.decode_batch(as_flat, order=True, times=True)
    assert full.books.entry_ids == [b"1-0", b"3-0", b"32-0", b"33-0", b"34-0", b"36-0", b"37-0"]
    assert len(full.undecodable) == 23  # 4-9, 11, 14, 16-18, 20-31


def test_flat_entries_in_the_encoder_layout_give_every_field_from_its_own_position():
    """Each field of TRADE, TRADE2, BOOK and BOOK_TS is distinct from the others: a wrong index shows."""
    entries = [(b"1-0", flat(raw(TRADE))), (b"2-0", flat(raw(BOOK))), (b"3-0", flat(raw(TRADE2))),
               (b"4-0", flat(raw(BOOK_TS))), (b"5-0", flat(raw(TRADE))), (b"6-0", flat(raw(BOOK_TS)))]
    batch = codec.decode_batch(entries, order=True, times=True)
    t, b = batch.trades, batch.books
    assert [codec.trade_at(t, i) for i in range(len(t))] == [TRADE, TRADE2, TRADE]
    assert [codec.book_at(b, i) for i in range(len(b))] == [BOOK, BOOK_TS, BOOK_TS]
    assert t.entry_ids == [b"1-0", b"3-0", b"5-0"] and b.entry_ids == [b"2-0", b"4-0", b"6-0"]
    assert batch.order == [0, ~0, 1, ~1, 2, ~2] and not batch.undecodable


def test_a_flat_entry_with_a_name_twice_reads_the_later_value_like_the_dict():
    for kwargs in FLAGS:
        twice = flat(raw(TRADE)) + [b"p", b"1.5", b"kind", b"trade"]
        batch = codec.decode_batch([(b"1-0", twice)], **kwargs)
        assert batch.trades.prices == ["1.5"] and not batch.undecodable, kwargs
        book_then_trade = flat(raw(BOOK)) + [b"kind", b"trade"]  # no longer a book: a trade without its fields
        bad = codec.decode_batch([(b"2-0", book_then_trade)], **kwargs).undecodable
        assert len(bad) == 1 and "malformed trade entry" in bad[0][1], kwargs
    ts_twice = flat(raw(BOOK_TS)) + [b"ts", b"7"]
    assert codec.decode_batch([(b"3-0", ts_twice)], order=True, times=True).books.times == [7]
    trade_then_book = flat(raw(TRADE)) + [b"kind", b"book"]  # no longer a trade: a book without its fields
    bad = codec.decode_batch([(b"4-0", trade_then_book)], order=True, times=True).undecodable
    assert len(bad) == 1 and "malformed book entry" in bad[0][1] and "b'b'" in bad[0][1]
    version_twice = flat(raw(BOOK)) + [b"v", b"2"]
    bad = codec.decode_batch([(b"5-0", version_twice)], order=True, times=True).undecodable
    assert bad == [(b"5-0", "tick schema v=b'2' unknown (this decoder reads v=1)")]
