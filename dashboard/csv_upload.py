"""Parse an uploaded OHLC CSV into candles: pure, no Streamlit, no I/O.

Accepted layouts (detected from the first line):
- Binance kline files (data.binance.vision), with or without their header, open time in ms or µs:
  ``open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore``
- Generic files with a header naming a time column (``timestamp``, ``time``, ``date``, ``datetime``,
  ``open_time``, ``ts``) and ``open``, ``high``, ``low``, ``close`` (``volume`` and ``symbol`` optional),
  in any case and order; times as epoch s/ms/µs/ns or ISO-8601 (naive = UTC).
Delimiter: comma, semicolon or tab. Every problem names its row (file line) and column; a file with any
problem gives no candles at all.

The rules are the worker API's own (`qs_common.ohlc`: header aliases, cell length, one epoch unit per file,
sane open times, exact decimals, candle checks), run on the file as written, so what this page accepts the
import accepts too; the dashboard adds only what the API does not take (a symbol column, a missing volume
for analysis only) and lists up to MAX_ERRORS problems at once instead of the first.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import pandas as pd
import polars as pl

from qs_common import ohlc
from qs_common.times import INT64_MAX, SANE_AHEAD_MS, SANE_FROM_MS, epoch_unit, file_epoch_unit, iso_to_ms, now_ms

MAX_BYTES = 50 * 1024 * 1024  # default; the page passes the API's limit (API_MAX_BODY_MB)
MAX_ERRORS = 20
BINANCE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# The API's header vocabulary, plus a symbol column (a file of several series).
_ALIASES = {**{c: a for c, a in ohlc.ALIASES.items() if c != "taker_buy_quote_volume"},
            "symbol": ("symbol", "sym", "ticker", "pair")}
NUMERIC = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume")
_EPOCH_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_UNIT_MS = {"s": Decimal(1000), "ms": Decimal(1), "us": Decimal("0.001"), "ns": Decimal("0.000001")}


class CsvError(ValueError):
    """The file is not an OHLC CSV; `problems` lists every issue found (row and column named)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ParsedCsv:
    """Candles (floats, open_time ms UTC, sorted) and the same values as plain decimal text for import."""

    frame: pd.DataFrame
    text: pd.DataFrame
    layout: str
    symbols: list[str] = field(default_factory=list)
    has_volume: bool = True  # False: volume was absent and is shown as 0; such a file is not imported

    def for_symbol(self, symbol: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        if symbol is None or "symbol" not in self.frame:
            return self.frame, self.text
        mask = self.frame["symbol"] == symbol
        return self.frame[mask].reset_index(drop=True), self.text[mask].reset_index(drop=True)


def epoch_number(value: str) -> Decimal | None:
    """The cell as an epoch number, or None when it is not one (then it may be ISO-8601)."""
    v = value.strip()
    return Decimal(v) if re.fullmatch(_EPOCH_NUMBER, v) else None


def parse_time_ms(value: str, unit: str | None = None) -> int:
    """Epoch (in `unit`, or s, ms, µs or ns by magnitude: `qs_common.times.epoch_unit`) or ISO-8601 (naive =
    UTC) to integer ms UTC, within int64 and between 2009-01-01 and one day from now; ValueError otherwise."""
    v = value.strip()
    number = epoch_number(v)
    if number is not None:
        if abs(number) > INT64_MAX:
            raise ValueError(f"{ohlc.show(v)} is beyond int64")
        own = epoch_unit(int(number))
        if unit is not None and own != unit:
            raise ValueError(f"{ohlc.show(v)} looks like {_UNIT_NAMES[own]} but the file's first time is in "
                             f"{_UNIT_NAMES[unit]} (one unit per file)")
        ms = int((number * _UNIT_MS[own]).to_integral_value(rounding="ROUND_FLOOR"))
    else:
        try:
            ms = iso_to_ms(v)
        except (ValueError, OverflowError):
            raise ValueError(f"{ohlc.show(v)} is neither an epoch number nor an ISO-8601 time") from None
    if ms < SANE_FROM_MS:
        raise ValueError(f"{ohlc.show(v)} is too small: before 2009-01-01")
    if ms > now_ms() + SANE_AHEAD_MS:
        raise ValueError(f"{ohlc.show(v)} is {utc_text(ms)} UTC, more than a day from now")
    return ms


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d])


def _header_map(header: list[str]) -> dict[str, int] | None:
    """Canonical column -> index, or None when the first line is data (no header)."""
    names = [h.strip().strip('"').lower().replace("-", "_").replace(" ", "_") for h in header]
    found: dict[str, int] = {}
    for canon, aliases in _ALIASES.items():
        for i, n in enumerate(names):
            if n in aliases and i not in found.values():
                found[canon] = i
                break
    if "open_time" in found or "open" in found or "close" in found:
        return found
    return None


def _decimal_text(value: str) -> str:
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?", value.strip()):
        raise InvalidOperation  # ASCII digits only, no nan/inf, no exponent of a million digits
    d = Decimal(value.strip())
    if not d.is_finite():
        raise InvalidOperation
    return format(d, "f")


def _detect(rows: list[list[str]]) -> tuple[dict[str, int], int, str]:
    """Column map, number of header lines, layout name."""
    header = _header_map(rows[0])
    if header is not None:
        missing = [c for c in ("open_time", "open", "high", "low", "close") if c not in header]
        if missing:
            raise CsvError([f"row 1: header lacks column(s) {', '.join(missing)} (have: {', '.join(rows[0])})"])
        binance = len(rows[0]) == 12 and "close_time" in [h.strip().lower() for h in rows[0]]
        return header, 1, "binance kline (header)" if binance else "generic (header)"
    width = len(rows[0])
    if width == 12:
        return {c: i for i, c in enumerate(BINANCE_COLUMNS) if c != "ignore"}, 0, "binance kline (no header)"
    if width in (5, 6):
        cols = ("open_time", "open", "high", "low", "close", "volume")[:width]
        return {c: i for i, c in enumerate(cols)}, 0, "generic (no header: time,open,high,low,close[,volume])"
    raise CsvError(
        [
            f"row 1: no header and {width} columns; expected a header, 12 Binance kline columns, or "
            "time,open,high,low,close[,volume]"
        ]
    )


def _read_rows(text: str, lines: list[str]) -> list[list[str]]:
    """csv rows; a cell past the csv module's limit (128 KiB) or a NUL byte is a CsvError naming the row."""
    delimiter = _sniff_delimiter(lines[0])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise CsvError([_unreadable(reader.line_num, lines, rows, delimiter, exc)]) from None
        rows.append(row)


def _unreadable(line_num: int, lines: list[str], rows: list[list[str]], delimiter: str, exc: csv.Error) -> str:
    """Name the row and, for an oversized cell, its column (the longest field of that line)."""
    line = lines[line_num - 1] if 0 < line_num <= len(lines) else ""
    if "field larger than field limit" not in str(exc):
        return f"row {line_num}: not readable as CSV ({exc})"
    fields = line.split(delimiter)
    longest = max(range(len(fields)), key=lambda i: len(fields[i]))
    header = rows[0] if rows and _header_map(rows[0]) is not None else None
    name = header[longest].strip() if header and longest < len(header) else f"{longest + 1}"
    return f"row {line_num}, column {name}: a cell of {len(fields[longest]):,} characters; at most {ohlc.MAX_CELL}"


def _file_unit(rows: list[list[str]], skip: int, idx: int) -> str | None:
    """The unit of the file's first epoch time (None for ISO times): every other row must have it too."""
    for row in rows[skip:]:
        if idx < len(row) and len(row[idx]) <= ohlc.MAX_CELL:
            number = epoch_number(row[idx])
            if number is not None and abs(number) <= INT64_MAX:
                return file_epoch_unit([int(number)])[0]
    return None


def _text(data: bytes | str, max_bytes: int) -> str:
    if isinstance(data, bytes):
        if len(data) > max_bytes:
            raise CsvError([f"file is {len(data) / 1_048_576:.1f} MiB; the limit is {max_bytes / 1_048_576:g} MiB"])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvError([f"file is not UTF-8 text (byte {exc.start})"]) from None
    return data.lstrip("\ufeff")


def _cell(canon: str, cell: str, unit: str | None, rec: dict[str, object], txt: dict[str, str]) -> None:
    """One cell into the row's record (value) and texts (as written); ValueError/InvalidOperation when bad."""
    if canon == "open_time":
        rec[canon] = parse_time_ms(cell, unit)
        txt[canon] = cell
    elif canon == "symbol":
        rec[canon] = cell.upper()
    elif canon in NUMERIC:
        if not cell and canon not in ("open", "high", "low", "close"):
            return
        txt[canon] = _decimal_text(cell)
        rec[canon] = float(txt[canon])
        if canon == "trades":
            txt[canon] = str(int(Decimal(txt[canon])))


def _row(lineno: int, row: list[str], columns: dict[str, int], names: dict[int, str], unit: str | None,
         problems: list[str]) -> tuple[dict[str, object], dict[str, str]]:
    """One data row -> (record, texts); its problems are appended to `problems`."""
    rec: dict[str, object] = {}
    txt: dict[str, str] = {}
    for canon, idx in columns.items():
        if idx >= len(row):
            if canon in ("open_time", "open", "high", "low", "close"):
                problems.append(f"row {lineno}, column {canon}: missing (row has {len(row)} fields)")
            continue
        cell = row[idx].strip()
        if len(cell) > ohlc.MAX_CELL:
            problems.append(f"row {lineno}, column {names[idx]}: {ohlc.show(cell)} is longer than "
                            f"{ohlc.MAX_CELL} characters")
            continue
        try:
            _cell(canon, cell, unit, rec, txt)
        except (ValueError, InvalidOperation) as exc:
            what = str(exc) if canon == "open_time" else f"{ohlc.show(cell)} is not a number"
            problems.append(f"row {lineno}, column {names[idx]}: {what}")
    if all(k in rec for k in ("open", "high", "low", "close")):
        problems.extend(_check_row(lineno, rec))
    return rec, txt


def parse_ohlc_csv(data: bytes | str, max_bytes: int = MAX_BYTES) -> ParsedCsv:
    """Parse and validate; raise CsvError naming row and column of each problem (at most MAX_ERRORS)."""
    text = _text(data, max_bytes)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise CsvError(["file is empty"])
    rows = _read_rows(text, lines)
    columns, skip, layout = _detect(rows)
    names = {i: rows[0][i].strip() if skip else c for c, i in columns.items()}
    unit = _file_unit(rows, skip, columns["open_time"])
    problems: list[str] = []
    records: list[dict[str, object]] = []
    texts: list[dict[str, str]] = []
    line_numbers: list[int] = []
    for lineno, row in enumerate(rows[skip:], start=skip + 1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(problems) >= MAX_ERRORS:
            problems.append("… more problems not listed")
            break
        rec, txt = _row(lineno, row, columns, names, unit, problems)
        records.append(rec)
        texts.append(txt)
        line_numbers.append(lineno)
    if not records and not problems:
        raise CsvError(["file has a header but no rows"])
    if problems:
        raise CsvError(problems)
    parsed = _finish(records, texts, line_numbers, layout)  # names every repeated time, not just the first
    _api_rules(texts, records, line_numbers, names, columns)
    parsed.has_volume = "volume" in columns
    return parsed


def _api_rules(
    texts: list[dict[str, str]],
    records: list[dict[str, object]],
    line_numbers: list[int],
    names: dict[int, str],
    columns: dict[str, int],
) -> None:
    """The import's own checks (`qs_common.ohlc.validate`) per symbol on the rows as written: what passes
    here, the API takes. A missing volume is filled with 0 for this check only (such files are not imported)."""
    groups: dict[object, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(rec.get("symbol"), []).append(i)
    for members in groups.values():
        cols = [c for c in ohlc.COLUMNS if c in columns]
        cells = {c: [texts[i].get(c) for i in members] for c in cols}
        cells["volume"] = [texts[i].get("volume", "0") for i in members]
        raw = pl.DataFrame(cells, schema=dict.fromkeys(cells, pl.String))
        try:
            ohlc.validate(raw)
        except ohlc.OhlcError as err:
            problem = err.problem
            where = f"row {line_numbers[members[problem.row - 1]]}, " if problem.row > 0 else ""
            column = names.get(columns.get(problem.column, -1), problem.column)
            raise CsvError([f"{where}column {column}: {problem.message}"]) from None


def _check_row(lineno: int, rec: dict[str, object]) -> list[str]:
    o, h, lo, c = (float(str(rec[k])) for k in ("open", "high", "low", "close"))
    out = []
    for name, v in (("open", o), ("high", h), ("low", lo), ("close", c)):
        if v <= 0:
            out.append(f"row {lineno}, column {name}: price {v} must be positive")
    if h < max(o, c, lo):
        out.append(f"row {lineno}, column high: {h} is below open, close or low")
    if lo > min(o, c):
        out.append(f"row {lineno}, column low: {lo} is above open or close")
    for name in ("volume", "quote_volume", "trades", "taker_buy_volume"):
        amount = rec.get(name)
        if amount is not None and float(str(amount)) < 0:
            out.append(f"row {lineno}, column {name}: {amount} must not be negative")
    return out


def _finish(
    records: list[dict[str, object]], texts: list[dict[str, str]], line_numbers: list[int], layout: str
) -> ParsedCsv:
    frame = pd.DataFrame.from_records(records)
    frame["open_time"] = frame["open_time"].astype("int64")
    text = pd.DataFrame.from_records(texts, index=frame.index)
    text["open_time"] = frame["open_time"]
    keys = ["symbol", "open_time"] if "symbol" in frame else ["open_time"]
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        first = frame.index[dup][:MAX_ERRORS]
        raise CsvError(
            [
                f"row {line_numbers[i]}, column open_time: time {utc_text(int(frame.at[i, 'open_time']))} "
                "UTC appears more than once"
                for i in first
            ]
        )
    order = frame.sort_values(keys, kind="stable").index
    frame, text = frame.loc[order].reset_index(drop=True), text.loc[order].reset_index(drop=True)
    if "volume" not in frame:
        frame["volume"] = 0.0
        text["volume"] = "0"
    symbols = sorted(frame["symbol"].unique().tolist()) if "symbol" in frame else []
    return ParsedCsv(frame=frame, text=text, layout=layout, symbols=symbols)


def infer_interval_ms(open_times: pd.Series) -> int | None:
    """The most common spacing between consecutive open times, or None for fewer than two rows."""
    diffs = open_times.sort_values().diff().dropna()
    diffs = diffs[diffs > 0]
    if diffs.empty:
        return None
    return int(diffs.mode().iloc[0])


def to_api_csv(text: pd.DataFrame) -> str:
    """The worker API's import format: open_time ms, decimals as plain text. An optional column the file lacks
    is left out (the API reads it as unknown); one the file has in some rows is sent with empty cells elsewhere,
    never the text "None"."""
    optional = ["quote_volume", "trades", "taker_buy_volume"]
    cols = ["open_time", "open", "high", "low", "close", "volume"]
    cols += [c for c in optional if c in text and text[c].notna().any()]
    out = io.StringIO()
    out.write(",".join(cols) + "\n")
    present = [c for c in cols if c in text]
    sub = text[present]
    for row in sub.itertuples(index=False):
        vals = dict(zip(present, row, strict=True))
        out.write(",".join("" if pd.isna(vals.get(c)) else str(vals.get(c, "")) for c in cols) + "\n")
    return out.getvalue()


def utc_text(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # beyond year 9999
        return f"{ms} ms"
