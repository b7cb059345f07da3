"""OHLC(V) candle files: one vocabulary and one set of checks for the worker's import API and the dashboard.

A file is read into text columns named canonically (`read_csv`, or `canonical_columns` for a header the
caller parsed itself), then `validate` turns them into typed candles or raises `OhlcError` naming the first
bad row (1 = first data row) and column, with the offending value shown safely truncated.

What a file must satisfy (the same for every caller, so the dashboard never accepts what the API refuses):
- columns: `open_time, open, high, low, close, volume` required (header aliases accepted, see ALIASES);
  `quote_volume, trades, taker_buy_volume, taker_buy_quote_volume` optional, and an empty optional cell is
  "unknown" (null), not an error; other columns (close_time, vwap, source, ignore, ...) are ignored.
- open times: all epoch numbers of ONE unit (s, ms, µs or ns, told from their size by
  `qs_common.times.epoch_unit`) or all ISO-8601 (naive = UTC); within int64; between 2009-01-01 and one day
  from now; on the interval grid; no time twice.
- numbers: plain decimals (an exponent is accepted), ASCII digits, at most 8 decimal places (16 for quote
  volumes: what the store keeps exactly, so nothing is silently rounded), trades a whole number; cells at
  most MAX_CELL characters.
- candles: prices > 0, high >= max(open, close), low <= min(open, close), high >= low, volumes and counts
  >= 0, taker-buy volumes <= their totals.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import polars as pl

from qs_common.times import (
    INT64_MAX,
    INT64_MIN,
    SANE_AHEAD_MS,
    SANE_FROM_MS,
    epoch_unit,
    file_epoch_unit,
    iso_to_ms,
    now_ms,
    to_ms,
)

PRICES = ("open", "high", "low", "close")
REQUIRED = ("open_time", "open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")
COLUMNS = REQUIRED + OPTIONAL
# Decimal places the store keeps exactly (DECIMAL(38, 8), quote volumes DECIMAL(38, 16)).
SCALE = {c: 16 if "quote" in c else 8 for c in COLUMNS if c not in ("open_time", "trades")}
MAX_CELL = 100
SHOW = 40  # characters of an offending value shown in a message

# Header names, compared lower-case with '-' and ' ' read as '_'.
ALIASES: dict[str, tuple[str, ...]] = {
    "open_time": ("open_time", "opentime", "timestamp", "time", "date", "datetime", "date_time", "ts", "t"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "price"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "quotevolume"),
    "trades": ("trades", "count", "number_of_trades", "num_trades"),
    "taker_buy_volume": ("taker_buy_volume", "taker_buy_base_asset_volume", "taker_buy_base_volume"),
    "taker_buy_quote_volume": ("taker_buy_quote_volume", "taker_buy_quote_asset_volume"),
}
# data.binance.vision kline files without a header; the 5/6-column generic layout without one.
BINANCE_KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)

_PLAIN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"
_EXPONENT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]{1,3}$"
_INTEGER = r"^[+-]?[0-9]+$"
_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"


class Problem(NamedTuple):
    row: int  # 1 = first data row; 0 = the header or the file as a whole
    column: str
    message: str

    def __str__(self) -> str:
        if self.row == 0:
            return f"{self.column}: {self.message}"
        return f"row {self.row}, column {self.column}: {self.message}"


class OhlcError(ValueError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class Candles:
    """Typed candles: open_time Int64 ms, prices and volumes Decimal(38, 8|16), trades Int64; optional
    columns null where the file left them empty or had no such column. Rows in file order."""

    frame: pl.DataFrame
    unit: str  # "s", "ms", "us", "ns" or "iso"

    @property
    def first(self) -> int | None:
        return None if self.frame.is_empty() else int(self.frame["open_time"].min())  # type: ignore[arg-type]

    @property
    def last(self) -> int | None:
        return None if self.frame.is_empty() else int(self.frame["open_time"].max())  # type: ignore[arg-type]


def show(value: object) -> str:
    """A cell for a message: repr, at most SHOW characters of it (a 1 MB cell must not come back whole)."""
    text = str(value)
    return repr(text) if len(text) <= SHOW else repr(text[:SHOW]) + f"… ({len(text)} characters)"


def canonical_columns(header: list[str]) -> dict[str, int]:
    """Canonical column -> index in `header`; unknown names are ignored. OhlcError on a missing required
    column or two columns meaning the same thing."""
    found: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().strip('"').lower().replace("-", "_").replace(" ", "_")
        for canon, aliases in ALIASES.items():
            if name in aliases:
                if canon in found:
                    raise OhlcError(Problem(0, "header", f"columns {show(header[found[canon]])} and "
                                                          f"{show(raw)} both mean {canon}"))
                found[canon] = i
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise OhlcError(Problem(0, "header", f"missing column(s) {', '.join(missing)}"))
    return found


def read_csv(body: bytes, max_rows: int | None = None) -> pl.DataFrame:
    """CSV bytes -> text columns with canonical names (only COLUMNS that are present).

    With a header (any alias, any order; comma, semicolon or tab), or without one: 12 columns are a Binance
    kline file, 5 or 6 are time,open,high,low,close[,volume] (a missing volume is not guessed: OhlcError).
    """
    text = body.removeprefix(b"\xef\xbb\xbf")
    first_line = text[: text.find(b"\n")] if b"\n" in text[:65_536] else text[:65_536]  # no copy of the rest
    if not first_line.strip():
        raise OhlcError(Problem(0, "body", "empty, or its first line is blank"))
    try:
        first = first_line.decode("utf-8")
    except UnicodeDecodeError:
        raise OhlcError(Problem(0, "body", "not UTF-8 text")) from None
    sep = max((",", ";", "\t"), key=first.count)
    cells = [c.strip().strip('"') for c in first.split(sep)]
    has_header = not any(c[:1].isdigit() or c[:1] in "+-" for c in cells[:1])
    try:
        raw = pl.read_csv(
            io.BytesIO(text), separator=sep, has_header=has_header, infer_schema=False,
            n_rows=None if max_rows is None else max_rows + 1, truncate_ragged_lines=False,
        )
    except Exception as exc:  # polars raises several error types for unreadable CSV
        raise OhlcError(Problem(0, "body", f"not a readable CSV ({_short(exc)})")) from None
    if max_rows is not None and raw.height > max_rows:
        raise OhlcError(Problem(0, "body", f"more than {max_rows} rows (IMPORT_MAX_ROWS)"))
    if has_header:
        columns = canonical_columns(raw.columns)
    elif raw.width == len(BINANCE_KLINE_COLUMNS):
        columns = {c: i for i, c in enumerate(BINANCE_KLINE_COLUMNS) if c in COLUMNS}
    elif raw.width == len(REQUIRED):
        columns = {c: i for i, c in enumerate(REQUIRED)}
    else:
        raise OhlcError(Problem(0, "header", f"none, and {raw.width} columns: give a header, or the 12 columns "
                                             "of a Binance kline file, or time,open,high,low,close,volume"))
    return raw.select([pl.col(raw.columns[i]).alias(c) for c, i in columns.items()])


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__


def _first(mask: pl.Series) -> int | None:
    """Index of the first True in a boolean series (nulls are False), or None."""
    mask = mask.fill_null(False)
    return int(mask.arg_max() or 0) if mask.any() else None


class _Errors:
    """The earliest problem over several checks: the file's first bad row is the one to fix first."""

    def __init__(self) -> None:
        self.best: Problem | None = None

    def add(self, mask: pl.Series, column: str, message: object) -> None:
        i = _first(mask)
        if i is not None and (self.best is None or i + 1 < self.best.row):
            text = message(i) if callable(message) else str(message)
            self.best = Problem(i + 1, column, text)

    def raise_any(self) -> None:
        if self.best is not None:
            raise OhlcError(self.best)


def validate(raw: pl.DataFrame, interval_ms: int | None = None, now: int | None = None) -> Candles:
    """Text columns (canonical names; cells str or null) -> typed, checked candles, or OhlcError."""
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise OhlcError(Problem(0, "header", f"missing column(s) {', '.join(missing)}"))
    if raw.is_empty():
        raise OhlcError(Problem(0, "body", "no rows"))
    cols = [c for c in COLUMNS if c in raw.columns]
    text = raw.select(pl.col(c).cast(pl.String).str.strip_chars() for c in cols)
    errors = _Errors()
    for c in cols:
        s = text[c]
        errors.add(s.str.len_chars() > MAX_CELL, c, lambda i, s=s: f"{show(s[i])} is longer than {MAX_CELL} characters")
        if c in REQUIRED:
            errors.add(s.is_null() | (s == ""), c, "empty")
    errors.raise_any()
    # empty optional cells are unknown values
    text = text.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in cols)

    open_time, unit = _open_times(text["open_time"], errors)
    out: dict[str, pl.Series] = {"open_time": open_time}
    for c in cols[1:]:
        out[c] = _number(text[c], c, errors)
    errors.raise_any()
    frame = pl.DataFrame(out)
    _check_times(frame["open_time"], text["open_time"], interval_ms, now, errors)
    _check_candles(frame, text, errors)
    errors.raise_any()
    for c in OPTIONAL:
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Int64 if c == "trades" else pl.Decimal(38, SCALE[c])).alias(c))
    return Candles(frame.select(COLUMNS), unit)


def _open_times(s: pl.Series, errors: _Errors) -> tuple[pl.Series, str]:
    """open_time text -> ms, and the file's unit (from its first row); problems go to `errors`."""
    empty = pl.Series("open_time", [], pl.Int64)
    numeric = s.str.contains(r"^[+-]?[0-9]+(\.[0-9]+)?$")
    if not numeric[0]:
        errors.add(numeric, "open_time", lambda i: f"{show(s[i])} is an epoch number, but the file's first time "
                                                   "is ISO-8601 (one kind of time per file)")
        if errors.best is not None:
            return empty, "?"
        values: list[int] = []
        for i, v in enumerate(s):
            try:
                values.append(iso_to_ms(v))
            except (ValueError, OverflowError):
                errors.add(_at(i, len(s)), "open_time", f"{show(v)} is neither an epoch number nor an ISO-8601 time")
                return empty, "?"
        return pl.Series("open_time", values, pl.Int64), "iso"
    errors.add(~numeric, "open_time", lambda i: f"{show(s[i])} is not an epoch number like the rows above it "
                                                "(one kind of time per file)")
    if errors.best is not None:
        return empty, "?"
    numbers: list[int] | list[Decimal]
    if s.str.contains(_INTEGER).all():
        typed = s.cast(pl.Int64, strict=False)
        errors.add(typed.is_null(), "open_time", lambda i: f"{show(s[i])} is beyond int64")
        if errors.best is not None:
            return empty, "?"
        numbers = typed.to_list()
    else:
        numbers = [Decimal(v) for v in s]
        errors.add(pl.Series([not INT64_MIN <= n <= INT64_MAX for n in numbers]), "open_time",
                   lambda i: f"{show(s[i])} is beyond int64")
        if errors.best is not None:
            return empty, "?"
    unit, differs = file_epoch_unit(int(n) for n in numbers)
    assert unit is not None
    if differs is not None:
        other = epoch_unit(int(numbers[differs]))
        errors.add(_at(differs, len(s)), "open_time",
                   f"{show(s[differs])} looks like {_UNIT_NAMES[other]} but the file's first time is in "
                   f"{_UNIT_NAMES[unit]} (one unit per file)")
        return empty, "?"
    if unit == "ms" and isinstance(numbers[0], int):
        return typed, unit
    return pl.Series("open_time", [_decimal_to_ms(n, unit) for n in numbers], pl.Int64), unit


def _at(i: int, n: int) -> pl.Series:
    return pl.Series([False] * n).scatter(i, True)


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _decimal_to_ms(n: int | Decimal, unit: str) -> int:
    if isinstance(n, int):
        return to_ms(n, unit)
    factor: dict[str, Decimal] = {"s": Decimal(1000), "ms": Decimal(1), "us": Decimal("0.001"),
                                  "ns": Decimal("0.000001")}
    ms = n * factor[unit]
    return int(ms.to_integral_value(rounding="ROUND_FLOOR"))


def _number(s: pl.Series, c: str, errors: _Errors) -> pl.Series:
    """Decimal text -> Decimal(38, SCALE) or Int64 (trades), exactly; nulls stay null."""
    present = s.is_not_null()
    orig = s  # messages show the cell as the file wrote it
    if s.str.contains(_EXPONENT).any():
        # rare (pandas writes 1e-05): spell those plainly, then the same checks as every other cell
        s = pl.Series(c, [_plain(v) for v in s], pl.String)
    if c == "trades":
        errors.add(present & ~s.str.contains(_WHOLE), c, lambda i: f"{show(orig[i])} is not a whole number")
        typed = s.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
        errors.add(present & typed.is_null() & s.str.contains(_WHOLE), c, lambda i: f"{show(orig[i])} is beyond int64")
        return typed
    scale = SCALE[c]
    errors.add(present & ~s.str.contains(_PLAIN), c, lambda i: f"{show(orig[i])} is not a valid number")
    errors.add(present & s.str.contains(rf"\.[0-9]{{{scale + 1},}}$"), c,
               lambda i: f"{show(orig[i])} has more than {scale} decimal places (stored exactly, never rounded)")
    typed = s.cast(pl.Decimal(38, scale), strict=False)
    errors.add(present & typed.is_null() & s.str.contains(_PLAIN), c, lambda i: f"{show(orig[i])} is too large")
    return typed


def _plain(v: str | None) -> str | None:
    if v is None:
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        return v
    return format(d, "f") if d.is_finite() else v


def _check_times(ms: pl.Series, text: pl.Series, interval_ms: int | None, now: int | None, errors: _Errors) -> None:
    hi = (now_ms() if now is None else now) + SANE_AHEAD_MS
    errors.add((ms < SANE_FROM_MS) | (ms > hi), "open_time",
               lambda i: f"{show(text[i])} is {_utc(int(ms[i]))} UTC, outside 2009-01-01 .. one day from now")
    if interval_ms:
        errors.add(ms % interval_ms != 0, "open_time",
                   lambda i: f"{show(text[i])} is {_utc(int(ms[i]))} UTC, not on the {interval_ms} ms grid of "
                             "the interval")
    dup = ms.is_duplicated() & ~ms.is_first_distinct()
    errors.add(dup, "open_time", lambda i: f"{show(text[i])} appears again (first at row "
                                           f"{int((ms == ms[i]).arg_max() or 0) + 1})")


def _utc(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return f"{ms} ms"


def _check_candles(f: pl.DataFrame, text: pl.DataFrame, errors: _Errors) -> None:
    """Candle sanity; messages show the cells as the file wrote them."""
    def mask(expr: pl.Expr) -> pl.Series:
        return f.select(expr.alias("m"))["m"]

    def cell(name: str, i: int) -> str:
        return show(text[name][i])

    o, h, lo, c = (pl.col(x) for x in PRICES)
    for name in PRICES:
        errors.add(f[name] <= 0, name, lambda i, n=name: f"{cell(n, i)} must be positive")
    errors.add(mask(h < lo), "high", lambda i: f"{cell('high', i)} is below low {cell('low', i)}")
    errors.add(mask(h < pl.max_horizontal(o, c)), "high",
               lambda i: f"{cell('high', i)} is below open {cell('open', i)} or close {cell('close', i)}")
    errors.add(mask(lo > pl.min_horizontal(o, c)), "low",
               lambda i: f"{cell('low', i)} is above open {cell('open', i)} or close {cell('close', i)}")
    for name in ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"):
        if name in f.columns:
            errors.add(f[name] < 0, name, lambda i, n=name: f"{cell(n, i)} must not be negative")
    for part, whole in (("taker_buy_volume", "volume"), ("taker_buy_quote_volume", "quote_volume")):
        if part in f.columns and whole in f.columns:
            errors.add(f[part] > f[whole], part,
                       lambda i, p=part, w=whole: f"{cell(p, i)} is above {w} {cell(w, i)}")
