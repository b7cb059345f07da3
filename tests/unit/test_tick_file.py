"""The tick-file source: rows -> Binance trade frames -> the one parser, with stable ids and named bad rows."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from ingest.parser import EdgeRules, Rejected, parse_frame
from ingest.sources.base import FeedEvent, FileRow
from ingest.sources.tick_file import TickFileSource
from qs_common.models import Trade

RULES = EdgeRules(frozenset({"BTCUSDT", "ETHUSDT"}), 86_400_000)
MS = 1723161255342


def rows(*files: Path) -> list[FileRow]:
    async def collect() -> list[object]:
        return [item async for item in TickFileSource(list(files)).items() if not isinstance(item, FeedEvent)]

    out = asyncio.run(collect())
    assert all(isinstance(r, FileRow) for r in out)  # every row says where it came from
    return out  # type: ignore[return-value]


def parsed(row: FileRow) -> Trade | Rejected:
    assert not row.problem, row.problem
    result = parse_frame(row.recv_ns, row.raw, RULES)
    assert isinstance(result, Trade | Rejected)
    return result


def test_csv_with_ids_gives_the_trades_exactly(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text(f"timestamp,symbol,price,size,side,trade_id\n{MS},btcusdt,61837.63000000,0.02000000,sell,3735683259\n"
                 f"{MS + 1},BTCUSDT,61837.64,1.5,BUY,3735683260\n")
    a, b = (parsed(r) for r in rows(f))
    assert a == Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", MS, MS, MS * 1_000_000, True)
    assert b == Trade("BTCUSDT", 3735683260, "61837.64", "1.5", MS + 1, MS + 1, (MS + 1) * 1_000_000, False)


def test_derived_ids_are_stable_unique_and_follow_time(tmp_path):
    f = tmp_path / "t.ndjson"
    lines = [
        f'{{"timestamp":{MS},"symbol":"BTCUSDT","price":61837.63,"size":1e0}}',  # 1e0: not plain decimal text
        f'{{"timestamp":{MS},"symbol":"BTCUSDT","price":61837.63000000,"size":"0.5","side":"buy"}}',
        f'{{"timestamp":{MS},"symbol":"ETHUSDT","price":"2500.5","size":"1","side":"sell"}}',
        f'{{"timestamp":{MS},"symbol":"BTCUSDT","price":"61837.64","size":"0.1","side":"sell"}}',
        f'{{"timestamp":{MS + 1},"symbol":"BTCUSDT","price":"61837.65","size":"0.1","side":"sell"}}',
    ]
    f.write_text("\n".join(lines) + "\n")
    first = [parsed(r) for r in rows(f)]
    assert isinstance(first[0], Rejected) and "q" in first[0].reason  # the parser's rule, not a second copy
    trades = [t for t in first if isinstance(t, Trade)]
    assert [t.trade_id for t in trades] == [MS * 10**6 + 1, MS * 10**6, MS * 10**6 + 2, (MS + 1) * 10**6]
    assert trades[0].price == "61837.63000000"  # a JSON number keeps the text it was written as
    assert [t.buyer_is_maker for t in trades] == [False, True, True, True]
    assert [parsed(r) for r in rows(f)][1:] == trades  # a re-run derives the same ids


def test_rows_without_ids_that_go_back_in_time_are_refused_not_given_a_repeated_id(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text(f"timestamp,symbol,price,size\n{MS},BTCUSDT,1,1\n{MS + 5},BTCUSDT,1,1\n{MS},BTCUSDT,1,1\n"
                 f"{MS},ETHUSDT,1,1\n{MS + 5},BTCUSDT,1,1\n")
    out = rows(f)
    assert out[2].problem.startswith(f"BTCUSDT time {MS} ms is before the file's {MS + 5} ms")
    ids = [t.trade_id for t in map(parsed, (r for r in out if not r.problem)) if isinstance(t, Trade)]
    assert ids == [MS * 10**6, (MS + 5) * 10**6, MS * 10**6, (MS + 5) * 10**6 + 1]  # ETHUSDT has its own


@pytest.mark.parametrize(
    ("stamp", "ms"),
    [(str(MS // 1000), MS // 1000 * 1000), (str(MS), MS), (str(MS * 1000 + 999), MS), (str(MS * 10**6 + 1), MS),
     ("2024-08-08T23:54:15.342Z", MS), ("2024-08-08 23:54:15.342999", MS)],
)
def test_timestamp_units_by_size_or_iso(tmp_path, stamp, ms):
    f = tmp_path / "t.csv"
    f.write_text(f"timestamp,symbol,price,size\n{stamp},BTCUSDT,1,1\n")
    trade = parsed(rows(f)[0])
    assert isinstance(trade, Trade) and trade.ts_trade_ms == ms


def test_bad_rows_are_named_by_file_and_line_and_the_rest_go_on(tmp_path):
    f = tmp_path / "t.csv.gz"
    text = (f"\ntimestamp,symbol,price,size,side\n{MS},BTCUSDT,1,1,buy\n{MS * 1000},BTCUSDT,1,1,buy\n"
            f"{MS},BTCUSDT,1,,buy\nsoon,BTCUSDT,1,1,buy\n{MS},BTCUSDT,1,1,hold\n{MS},BTCUSDT,1,1,sell\n")
    f.write_bytes(gzip.compress(text.encode()))
    out = rows(f)
    problems = [(r.origin, r.problem) for r in out if r.problem]
    assert problems == [
        ("t.csv.gz line 4", f"timestamp {MS * 1000} is in us, the file's first is in ms"),
        ("t.csv.gz line 5", "no size"),
        ("t.csv.gz line 6", "timestamp 'soon' is neither an epoch number nor ISO-8601"),
        ("t.csv.gz line 7", "side 'hold' is not buy or sell"),
    ]
    assert [r.origin for r in out if not r.problem] == ["t.csv.gz line 3", "t.csv.gz line 8"]
    assert b"hold" in out[4].raw  # the row itself is kept in the dead letter


def test_a_header_without_the_columns_is_one_bad_row(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("time,sym,px\n1,2,3\n")
    (row,) = rows(f)
    assert row.problem.startswith("header has no timestamp, symbol, price, size") and row.origin == "t.csv line 1"


def test_files_merge_in_time_order_and_missing_files_are_named(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(f"timestamp,symbol,price,size\n{MS},BTCUSDT,1,1\n{MS + 2},BTCUSDT,1,1\n")
    b.write_text(f"timestamp,symbol,price,size\n{MS + 1},ETHUSDT,1,1\n")
    assert [r.recv_ns // 10**6 for r in rows(a, b)] == [MS, MS + 1, MS + 2]
    with pytest.raises(FileNotFoundError, match="tick file not found"):
        TickFileSource([tmp_path / "nope.csv"])
    with pytest.raises(ValueError, match="at least one file"):
        TickFileSource([])
