"""Parse an uploaded OHLC CSV into candles: pure, no Streamlit, no I/O.

Accepted layouts (detected from the first line):
- Binance kline files (data.binance.vision), with or without their header, open time in ms or µs:
  ``open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore``
- Generic files with a header naming a time column (``timestamp``, ``time``, ``date``, ``datetime``,
  ``open_time``, ``ts``) and ``open``, ``high``, ``low``, ``close`` (``volume`` and ``symbol`` optional),
  in any case and order; times as epoch s/ms/µs/ns or ISO-8601 (naive = UTC).
Delimiter: comma, semicolon or tab. Every problem names its row (file line) and column; a file with any
problem gives no candles at all.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import pandas as pd

from qs_common.times import iso_to_ms

MAX_BYTES = 50 * 1024 * 1024
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
_ALIASES = {
    "open_time": (
        "open_time",
        "opentime",
        "open time",
        "timestamp",
        "time",
        "date",
        "datetime",
        "date_time",
        "ts",
        "t",
    ),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "price"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "quotevolume"),
    "trades": ("trades", "count", "number_of_trades", "num_trades"),
    "taker_buy_volume": ("taker_buy_volume", "taker_buy_base_asset_volume", "taker_buy_base_volume"),
    "symbol": ("symbol", "sym", "ticker", "pair"),
}
NUMERIC = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume")
# Epoch magnitudes: a time in 2000..2100 has 10 digits in s, 13 in ms, 16 in µs, 19 in ns.
_EPOCH_DIVISORS = ((1e17, 1_000_000), (1e14, 1_000), (1e11, 1), (1e8, None))


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

    def for_symbol(self, symbol: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        if symbol is None or "symbol" not in self.frame:
            return self.frame, self.text
        mask = self.frame["symbol"] == symbol
        return self.frame[mask].reset_index(drop=True), self.text[mask].reset_index(drop=True)


def parse_time_ms(value: str) -> int:
    """Epoch (s, ms, µs or ns by magnitude) or ISO-8601 (naive = UTC) to integer ms UTC."""
    v = value.strip()
    try:
        number = Decimal(v)
    except InvalidOperation:
        number = None
    if number is not None and number.is_finite():
        for bound, divisor in _EPOCH_DIVISORS:
            if abs(number) >= bound:
                if divisor is None:  # seconds
                    return int(number * 1000)
                return int(number // divisor)
        raise ValueError(f"{v!r} is too small to be an epoch time")
    try:
        return iso_to_ms(v)
    except ValueError:
        raise ValueError(f"{v!r} is neither an epoch number nor an ISO-8601 time") from None


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d])


def _header_map(header: list[str]) -> dict[str, int] | None:
    """Canonical column -> index, or None when the first line is data (no header)."""
    names = [h.strip().strip('"').lower().replace("-", "_") for h in header]
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


def parse_ohlc_csv(data: bytes | str) -> ParsedCsv:
    """Parse and validate; raise CsvError naming row and column of each problem (at most MAX_ERRORS)."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise CsvError([f"file is {len(data) // 1_048_576} MiB; the limit is {MAX_BYTES // 1_048_576} MiB"])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvError([f"file is not UTF-8 text (byte {exc.start})"]) from None
    text = data.lstrip("\ufeff")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise CsvError(["file is empty"])
    rows = list(csv.reader(io.StringIO(text), delimiter=_sniff_delimiter(lines[0])))
    columns, skip, layout = _detect(rows)
    problems: list[str] = []
    records: list[dict[str, object]] = []
    texts: list[dict[str, str]] = []
    line_numbers: list[int] = []
    names = {i: rows[0][i].strip() if skip else c for c, i in columns.items()}
    for lineno, row in enumerate(rows[skip:], start=skip + 1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(problems) >= MAX_ERRORS:
            problems.append("… more problems not listed")
            break
        rec: dict[str, object] = {}
        txt: dict[str, str] = {}
        for canon, idx in columns.items():
            if idx >= len(row):
                if canon in ("open_time", "open", "high", "low", "close"):
                    problems.append(f"row {lineno}, column {canon}: missing (row has {len(row)} fields)")
                continue
            cell = row[idx].strip()
            try:
                if canon == "open_time":
                    rec[canon] = parse_time_ms(cell)
                elif canon == "symbol":
                    rec[canon] = cell.upper()
                elif canon in NUMERIC:
                    if not cell and canon not in ("open", "high", "low", "close"):
                        continue
                    txt[canon] = _decimal_text(cell)
                    rec[canon] = float(txt[canon])
                    if canon == "trades":
                        txt[canon] = str(int(Decimal(txt[canon])))
            except (ValueError, InvalidOperation) as exc:
                what = str(exc) if canon == "open_time" else f"{cell!r} is not a number"
                problems.append(f"row {lineno}, column {names[idx]}: {what}")
        if all(k in rec for k in ("open", "high", "low", "close")):
            problems.extend(_check_row(lineno, rec))
        records.append(rec)
        texts.append(txt)
        line_numbers.append(lineno)
    if not records and not problems:
        raise CsvError(["file has a header but no rows"])
    if problems:
        raise CsvError(problems)
    return _finish(records, texts, line_numbers, layout)


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
    """The worker API's import format: open_time ms, decimals as plain text, optional columns empty-filled."""
    cols = ["open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume"]
    out = io.StringIO()
    out.write(",".join(cols) + "\n")
    present = [c for c in cols if c in text]
    sub = text[present]
    for row in sub.itertuples(index=False):
        vals = dict(zip(present, row, strict=True))
        out.write(",".join("" if pd.isna(vals.get(c)) else str(vals.get(c, "")) for c in cols) + "\n")
    return out.getvalue()


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
