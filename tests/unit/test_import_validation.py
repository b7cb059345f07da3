"""The shared OHLC file checks (qs_common.ohlc), the one epoch-unit rule (qs_common.times), the API's bounded
body reader and its JSON 500s; real DuckDB files, real gzip, the real Starlette app."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib

import httpx
import pytest

from qs_common import ohlc
from qs_common.times import epoch_unit, file_epoch_unit, iso_to_ms, to_ms
from worker.api import create_app
from worker.api_body import BodyError, _Inflater
from worker.store import CandleStore

DAY = 1_723_075_200_000  # 2024-08-08T00:00:00Z
NOW = DAY + 86_400_000
HEADER = "open_time,open,high,low,close,volume"


def check(text: str, interval_ms: int | None = 60_000) -> ohlc.Candles:
    return ohlc.validate(ohlc.read_csv(text.encode()), interval_ms, now=NOW)


def problem(text: str, interval_ms: int | None = 60_000) -> str:
    with pytest.raises(ohlc.OhlcError) as err:
        check(text, interval_ms)
    return str(err.value)


@pytest.mark.parametrize(
    ("value", "unit"),
    [(1_723_075_200, "s"), (1_230_768_000, "s"), (DAY, "ms"), (DAY * 1000, "us"), (DAY * 1_000_000, "ns"),
     (99_999_999_999, "s"), (100_000_000_000, "ms"), (10**14, "us"), (10**17, "ns")],
)
def test_one_rule_tells_the_epoch_unit_by_size(value, unit):
    assert epoch_unit(value) == unit
    assert to_ms(value, unit) == {"s": value * 1000, "ms": value, "us": value // 1000, "ns": value // 10**6}[unit]


def test_a_file_has_one_unit_and_the_first_differing_value_is_named():
    assert file_epoch_unit([DAY, DAY + 60_000]) == ("ms", None)
    assert file_epoch_unit([DAY, DAY + 60_000, (DAY + 120_000) * 1000, DAY]) == ("ms", 2)
    assert file_epoch_unit([]) == (None, None)


def test_iso_times_are_exact_to_the_millisecond():
    # float timestamps would give ...999 for some microsecond inputs
    assert iso_to_ms("2024-08-08T00:00:00.001999Z") == DAY + 1
    assert iso_to_ms("2024-08-08 02:00:00+02:00") == DAY
    assert iso_to_ms("2024-08-08") == DAY


def test_generic_layouts_and_aliases_import():
    for header in ("time,open,high,low,close,volume", "Timestamp;Open;High;Low;Close;Volume",
                   "date\topen\thigh\tlow\tclose\tvolume", "open_time,o,h,l,c,v,vwap,source"):
        sep = ";" if ";" in header else "\t" if "\t" in header else ","
        extra = ",1.1,import" if "vwap" in header else ""
        got = check(f"{header}\n" + sep.join([str(DAY), "1", "2", "0.5", "1.5", "10"]) + extra + "\n")
        assert got.frame["open_time"].to_list() == [DAY] and got.unit == "ms"
        assert got.frame["quote_volume"].to_list() == [None] and got.frame["trades"].to_list() == [None]


def test_headerless_binance_klines_and_the_six_column_layout():
    kline = f"{DAY * 1000},1,2,0.5,1.5,10,{DAY * 1000 + 59_999_999},15,7,4,6,0\n"
    got = check(kline)
    assert got.unit == "us" and got.frame.row(0, named=True)["trades"] == 7
    assert check(f"{DAY // 1000},1,2,0.5,1.5,10\n").unit == "s"


def test_a_missing_volume_column_is_refused_not_guessed():
    # an unknown volume stored as 0 would claim nothing traded; volume is required
    assert problem(f"time,open,high,low,close\n{DAY},1,2,0.5,1.5\n") == "header: missing column(s) volume"


def test_two_columns_meaning_the_same_are_refused():
    assert problem(f"time,open_time,open,high,low,close,volume\n{DAY},{DAY},1,2,0.5,1.5,1\n") == (
        "header: columns 'time' and 'open_time' both mean open_time")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([f"{DAY // 1000},1,2,0.5,1.5,1", f"{DAY},1,2,0.5,1.5,1"],
         f"row 2, column open_time: '{DAY}' looks like milliseconds but the file's first time is in seconds "
         "(one unit per file)"),
        ([f"{DAY},1,2,0.5,1.5,1", "2024-08-08T00:01:00Z,1,2,0.5,1.5,1"],
         "row 2, column open_time: '2024-08-08T00:01:00Z' is not an epoch number like the rows above it "
         "(one kind of time per file)"),
        (["2024-08-08T00:00:00Z,1,2,0.5,1.5,1", f"{DAY},1,2,0.5,1.5,1"],
         f"row 2, column open_time: '{DAY}' is an epoch number, but the file's first time is ISO-8601 "
         "(one kind of time per file)"),
        (["yesterday,1,2,0.5,1.5,1"], "row 1, column open_time: 'yesterday' is neither an epoch number nor an "
                                      "ISO-8601 time"),
        ([f"{DAY},1,2,0.5,1.5,1", "60000,1,2,0.5,1.5,1"],
         "row 2, column open_time: '60000' looks like seconds but the file's first time is in milliseconds "
         "(one unit per file)"),
        (["1000000000000,1,2,0.5,1.5,1"],
         "row 1, column open_time: '1000000000000' is 2001-09-09 01:46:40 UTC, outside 2009-01-01 .. one day from "
         "now"),
        ([f"{NOW + 2 * 86_400_000},1,2,0.5,1.5,1"],
         f"row 1, column open_time: '{NOW + 2 * 86_400_000}' is 2024-08-11 00:00:00 UTC, outside 2009-01-01 .. one "
         "day from now"),
        ([f"{DAY},1,2,0.5,1.5,"], "row 1, column volume: empty"),
        ([f"{DAY},1,2,0.5,1.5,١٢"], "row 1, column volume: '١٢' is not a valid number"),
        ([f"{DAY},1,2,0.5,1.5,NaN"], "row 1, column volume: 'NaN' is not a valid number"),
        ([f"{DAY},1,2,0.5,1.5,inf"], "row 1, column volume: 'inf' is not a valid number"),
        ([f"{DAY},1,2,0.5,1.5,1e40"], "row 1, column volume: '1e40' is too large"),
        ([f"{DAY},1,2,0.5,1.5,1,0.5"], None),  # quote_volume column absent from the header: ignored extra cell
        ([f"{DAY},1,2,0.5,1.5,1"] * 2, f"row 2, column open_time: '{DAY}' appears again (first at row 1)"),
        ([f"{DAY + 1},1,2,0.5,1.5,1"], f"row 1, column open_time: '{DAY + 1}' is 2024-08-08 00:00:00 UTC, not on "
                                       "the 60000 ms grid of the interval"),
    ],
)
def test_row_problems_name_row_and_column(rows, message):
    text = f"{HEADER}\n" + "".join(r + "\n" for r in rows)
    if message is None:
        with pytest.raises(ohlc.OhlcError, match="not a readable CSV"):
            check(text)
        return
    assert problem(text) == message


def test_optional_columns_are_checked_when_present_and_null_when_empty():
    head = "open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume,taker_buy_quote_volume\n"
    got = check(head + f"{DAY},1,2,0.5,1.5,10,15,3,4,6\n{DAY + 60_000},1,2,0.5,1.5,10,,,,\n")
    assert got.frame["trades"].to_list() == [3, None]
    assert [str(v) if v is not None else None for v in got.frame["quote_volume"].to_list()] == [
        "15.0000000000000000", None]
    assert problem(head + f"{DAY},1,2,0.5,1.5,10,15,-3,4,6\n") == "row 1, column trades: '-3' must not be negative"
    assert problem(head + f"{DAY},1,2,0.5,1.5,10,15,2.5,4,6\n") == "row 1, column trades: '2.5' is not a whole number"
    assert problem(head + f"{DAY},1,2,0.5,1.5,10,15,3,4,16\n") == (
        "row 1, column taker_buy_quote_volume: '16' is above quote_volume '15'")
    # 16 places for quote volumes (stored exactly), more is refused
    assert check(head + f"{DAY},1,2,0.5,1.5,10,0.0000000000000001,3,4,0\n").frame.height == 1
    assert "more than 16 decimal places" in problem(head + f"{DAY},1,2,0.5,1.5,10,0.00000000000000001,3,4,0\n")


def test_the_first_bad_row_is_reported_whatever_the_check():
    text = f"{HEADER}\n{DAY},1,2,0.5,1.5,1\n{DAY + 60_000},1,2,0.5,1.5,-1\n{DAY + 120_000},1,0.9,0.5,1.5,1\n"
    assert problem(text) == "row 2, column volume: '-1' must not be negative"


def test_a_huge_cell_is_shown_truncated():
    text = f"{HEADER}\n{DAY},1,2,0.5,1.5,{'7' * 1_000_000}\n"
    message = problem(text)
    assert len(message) < 200 and "(1000000 characters) is longer than 100 characters" in message


def test_rows_are_bounded_when_reading():
    text = f"{HEADER}\n" + "".join(f"{DAY + i * 60_000},1,2,0.5,1.5,1\n" for i in range(11))
    assert ohlc.read_csv(text.encode(), max_rows=11).height == 11
    with pytest.raises(ohlc.OhlcError, match="more than 10 rows"):
        ohlc.read_csv(text.encode(), max_rows=10)


def test_bad_bytes_are_a_clear_error():
    for body, words in ((b"", "empty"), (b"\xff\xfe\x00t\x00i\x00m\x00e", "not UTF-8"),
                        (f"{HEADER}\n".encode(), "no rows")):
        with pytest.raises(ohlc.OhlcError, match=words):
            ohlc.validate(ohlc.read_csv(body), 60_000)


def test_inflating_is_bounded_whatever_the_ratio():
    bomb = gzip.compress(b"0" * (20 * 1_048_576))
    inflater = _Inflater(1_048_576)
    with pytest.raises(BodyError) as err:
        inflater.feed(bomb)
    assert err.value.status == 413 and len(inflater.out) <= 1_048_576 + 1
    # several members are one body; a truncated one is an error, not a short file
    two = gzip.compress(b"a,b\n") + gzip.compress(b"1,2\n")
    ok = _Inflater(100)
    ok.feed(two[:5])
    ok.feed(two[5:])
    assert ok.finish() == b"a,b\n1,2\n"
    cut = _Inflater(100)
    cut.feed(two[:10])
    with pytest.raises(BodyError, match="ends early"):
        cut.finish()
    with pytest.raises(BodyError, match="not valid gzip"):
        _Inflater(100).feed(b"\x1f\x8b" + zlib.compress(b"x"))


def test_an_unexpected_error_is_a_short_json_500_and_logged(tmp_path, caplog):
    store = CandleStore(tmp_path / "market_data.duckdb")
    app = create_app(store, lambda: True)
    store.close()  # every read now raises inside the handler

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/candles", params={"symbol": "BTCUSDT"})

    with caplog.at_level(logging.ERROR, logger="worker.api"):
        resp = asyncio.run(get())
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal error (details are in the worker's log)"}
    assert "Traceback" not in resp.text and "duckdb" not in resp.text.lower()
    assert any(r.exc_info and "GET /candles failed" in r.getMessage() for r in caplog.records)
