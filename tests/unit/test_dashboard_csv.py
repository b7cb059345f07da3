"""The upload parser on every accepted layout and on malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.csv_upload import CsvError, infer_interval_ms, parse_ohlc_csv, parse_time_ms, to_api_csv

CSV = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
KLINES = Path(__file__).resolve().parents[1] / "fixtures" / "BTCUSDT-1m-2024-08-08.csv"
FIRST_OPEN_MS = 1723154400000  # 2024-08-08T22:00:00Z, first row of every sample in tests/fixtures/csv


def _kline_rows() -> list[list[str]]:
    return [line.split(",") for line in KLINES.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("binance_ms_noheader.csv", "binance kline (no header)"),
        ("binance_us_header.csv", "binance kline (header)"),
        ("generic_iso.csv", "generic (header)"),
        ("generic_epoch_s_semicolon.csv", "generic (header)"),
    ],
)
def test_every_layout_gives_the_same_candles(name: str, layout: str) -> None:
    parsed = parse_ohlc_csv((CSV / name).read_bytes())
    assert parsed.layout == layout
    f = parsed.frame
    assert len(f) == 30
    assert f["open_time"].iloc[0] == FIRST_OPEN_MS
    assert infer_interval_ms(f["open_time"]) == 60_000
    reference = [r for r in _kline_rows() if int(r[0]) >= FIRST_OPEN_MS][:30]
    assert f["open"].tolist() == [float(r[1]) for r in reference]
    assert f["high"].tolist() == [float(r[2]) for r in reference]
    assert f["low"].tolist() == [float(r[3]) for r in reference]
    assert f["close"].tolist() == [float(r[4]) for r in reference]


def test_volume_is_zero_when_absent_and_kept_when_present() -> None:
    no_volume = parse_ohlc_csv((CSV / "generic_epoch_s_semicolon.csv").read_bytes())
    assert (no_volume.frame["volume"] == 0).all()
    with_volume = parse_ohlc_csv((CSV / "generic_iso.csv").read_bytes())
    assert with_volume.frame["volume"].iloc[0] == pytest.approx(234.99248)


def test_whole_day_of_official_klines() -> None:
    parsed = parse_ohlc_csv(KLINES.read_bytes())
    rows = _kline_rows()
    assert len(parsed.frame) == len(rows) == 1440
    assert parsed.frame["trades"].iloc[-1] == float(rows[-1][8])
    assert parsed.frame["quote_volume"].iloc[0] == float(rows[0][7])


def test_symbol_column_gives_two_legs() -> None:
    parsed = parse_ohlc_csv((CSV / "pair_symbol_column.csv").read_bytes())
    assert parsed.symbols == ["BTCUSDT", "ETHUSDT"]
    btc, _ = parsed.for_symbol("BTCUSDT")
    eth, _ = parsed.for_symbol("ETHUSDT")
    assert len(btc) == len(eth) == 120
    assert btc["open_time"].tolist() == eth["open_time"].tolist()


def test_rows_are_sorted_by_time() -> None:
    lines = (CSV / "generic_iso.csv").read_text().splitlines()
    shuffled = "\n".join([lines[0], *reversed(lines[1:])])
    parsed = parse_ohlc_csv(shuffled)
    assert parsed.frame["open_time"].is_monotonic_increasing
    assert parsed.frame["open_time"].iloc[0] == FIRST_OPEN_MS


def test_api_csv_keeps_exact_decimal_text() -> None:
    parsed = parse_ohlc_csv((CSV / "binance_ms_noheader.csv").read_bytes())
    out = to_api_csv(parsed.text).splitlines()
    assert out[0] == "open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume"
    first = (CSV / "binance_ms_noheader.csv").read_text().splitlines()[0].split(",")
    assert out[1].split(",") == [
        first[0],
        first[1],
        first[2],
        first[3],
        first[4],
        first[5],
        first[7],
        first[8],
        first[9],
    ]
    assert len(out) == 31


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1723154400", FIRST_OPEN_MS),
        ("1723154400000", FIRST_OPEN_MS),
        ("1723154400000000", FIRST_OPEN_MS),
        ("1723154400000000000", FIRST_OPEN_MS),
        ("2024-08-08T22:00:00Z", FIRST_OPEN_MS),
        ("2024-08-08 22:00:00", FIRST_OPEN_MS),
        ("2024-08-09T00:00:00+02:00", FIRST_OPEN_MS),
        ("1723154400.5", FIRST_OPEN_MS + 500),
    ],
)
def test_time_formats(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


def test_bad_number_names_row_and_column() -> None:
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv((CSV / "bad_number.csv").read_bytes())
    assert err.value.problems == ["row 5, column high: 'abc' is not a number"]


def test_high_below_close_names_row_and_column() -> None:
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv((CSV / "bad_high_below.csv").read_bytes())
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("row 3, column high:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file is empty"),
        ("timestamp,open,high,low,close\n", "file has a header but no rows"),
        ("timestamp,open,close\n1,2,3\n", "row 1: header lacks column(s) high, low"),
        ("a,b,c\n1,2,3\n", "row 1: header lacks column(s) open_time, open, high, low (have: a, b, c)"),
        ("1,2,3\n1,2,3\n", "row 1: no header and 3 columns"),
        ("time,open,high,low,close\nnot-a-time,1,2,0.5,1\n", "row 2, column time: 'not-a-time' is neither"),
        ("time,open,high,low,close\n1723154400,1,2,0.5\n", "row 2, column close: missing"),
        ("time,open,high,low,close\n1723154400,-1,2,-2,1\n", "row 2, column open: price -1.0 must be positive"),
        ("time,open,high,low,close\n1723154400,1,2,0.5,1\n1723154400,1,2,0.5,1\n", "row 2, column open_time"),
        ("time,open,high,low,close,volume\n1723154400,1,2,0.5,1,-3\n", "row 2, column volume: -3.0 must not"),
        ("time,open,high,low,close\n1723154400,1,2,0.5,nan\n", "row 2, column close: 'nan' is not a number"),
        ("time,open,high,low,close\n12,1,2,0.5,1\n", "row 2, column time: '12' is too small"),
    ],
)
def test_malformed_files(text: str, expected: str) -> None:
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(text.encode())
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_many_errors_are_capped() -> None:
    body = "time,open,high,low,close\n" + "\n".join(f"{1723154400 + 60 * i},x,2,0.5,1" for i in range(100))
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(body)
    assert len(err.value.problems) == 21
    assert err.value.problems[0] == "row 2, column open: 'x' is not a number"
    assert err.value.problems[-1].startswith("…")


def test_not_utf8() -> None:
    with pytest.raises(CsvError, match="not UTF-8"):
        parse_ohlc_csv(b"time,open\n\xff\xfe,1\n")
