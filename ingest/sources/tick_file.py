"""Replay tick files: trades as `timestamp,symbol,price,size[,side][,trade_id]`, CSV or NDJSON, gzip or plain.

CSV has a header naming those columns (any order, any case; other columns are ignored). NDJSON has one object
per line with those keys, as the browser-based Binance collectors export them; numbers may be JSON numbers or
strings (a JSON number is kept as the exact text it was written as, never through a float).
- `timestamp`: epoch s, ms, µs or ns, told by size (`qs_common.times.epoch_unit`; one unit per file, set by its
  first row), or ISO-8601 (naive = UTC). Sub-millisecond parts are floored: candles are in ms.
- `side`: the taker's side, `buy` or `sell` (any case). Binance's `m` (the buyer was the maker) is true when the
  taker sold. Without a side, `m` is true: no volume is claimed as taker-buy volume.
- `trade_id`: positive integer. Where a file has none (no column, or an empty cell), the id is derived:
  timestamp_ms * 1,000,000 + the row's ordinal among that symbol's rows of the same millisecond in the same
  file (0, 1, ...). A re-run of the same file gives the same ids, so the candle store's de-duplication keeps
  exactly-once; ids grow with time, so a candle's open and close (lowest and highest id) follow the file order.
  Rows without an id must be in time order per symbol (a row that goes back is dead-lettered: its id could
  repeat another's), a millisecond of one symbol must not be split across files, and derived ids (~10^18) must
  not be mixed with the venue's own ids for the same symbol and minute.

Each row becomes a Binance `@trade` frame (receive time = trade time) that goes through the one parser, so the
edge rules (symbol subscribed, decimal text, price and size > 0, p·q bound) are the live feed's. A row that
cannot become a frame, or whose frame the parser rejects, is dead-lettered with the file, line and reason.
Several files are merged in time order; `speed` as for replay (0 = as fast as possible).
"""

from __future__ import annotations

import csv
import gzip
import heapq
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from ingest.sources.base import FeedEvent, FileRow, SourceItem
from ingest.sources.files import check_files, paced
from qs_common.times import EpochUnit, epoch_unit, iso_to_ms, to_ms
from qs_common.venues.binance.wire import trade_frame

COLUMNS = ("timestamp", "symbol", "price", "size")
DERIVED_ID_SLOTS = 1_000_000  # derived ids: timestamp_ms * this + ordinal within the symbol's millisecond
_MAX_CELL = 100


class RowError(ValueError):
    """A row that is not a tick of this format."""


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    # not UTF-8: the bad bytes become U+FFFD, so the row is dead-lettered by the parser's rules, not a crash
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return path.open(encoding="utf-8", errors="replace", newline="")


def _text(value: object, name: str) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > _MAX_CELL:
        raise RowError(f"{name} is longer than {_MAX_CELL} characters")
    return text


class _RowReader:
    """One file's rows -> (ts_ms, frame or None, origin, problem), in file order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unit: EpochUnit | None = None
        # per symbol: the newest millisecond and how many rows had it (derived ids need no more: memory stays flat)
        self.newest: dict[str, tuple[int, int]] = {}

    def _ms(self, value: str) -> int:
        if value.lstrip("-").isdigit():
            n = int(value)
            unit = epoch_unit(n)
            if self.unit is None:
                self.unit = unit
            elif unit != self.unit:
                raise RowError(f"timestamp {value} is in {unit}, the file's first is in {self.unit}")
            return to_ms(n, unit)
        try:
            return iso_to_ms(value)
        except ValueError:
            raise RowError(f"timestamp {value[:40]!r} is neither an epoch number nor ISO-8601") from None

    def frame(self, row: dict[str, object]) -> tuple[int, bytes]:
        cells = {name: _text(row.get(name), name) for name in (*COLUMNS, "side", "trade_id")}
        missing = [name for name in COLUMNS if not cells[name]]
        if missing:
            raise RowError(f"no {', '.join(missing)}")
        ts_ms = self._ms(cells["timestamp"])
        symbol = cells["symbol"].upper()
        side = cells["side"].lower()
        if side not in ("", "buy", "sell"):
            raise RowError(f"side {cells['side'][:40]!r} is not buy or sell")
        if cells["trade_id"]:
            if not cells["trade_id"].isdigit():
                raise RowError(f"trade_id {cells['trade_id'][:40]!r} is not a positive integer")
            trade_id = int(cells["trade_id"])
        else:
            trade_id = self._derive_id(symbol, ts_ms)
        # the parser checks the rest (symbol, decimal text, > 0, int64 ranges) as for a live frame
        return ts_ms, trade_frame(symbol, trade_id, cells["price"], cells["size"], ts_ms, side != "buy")

    def _derive_id(self, symbol: str, ts_ms: int) -> int:
        newest_ms, count = self.newest.get(symbol, (ts_ms, 0))
        if ts_ms < newest_ms:  # a millisecond seen before may already have used the ordinal this row would get
            raise RowError(f"{symbol} time {ts_ms} ms is before the file's {newest_ms} ms: ids are derived only "
                           "for rows in time order (sort the file, or give a trade_id)")
        ordinal = count if ts_ms == newest_ms else 0
        if ordinal >= DERIVED_ID_SLOTS:
            raise RowError(f"more than {DERIVED_ID_SLOTS} {symbol} trades at {ts_ms} ms: no id can be derived")
        self.newest[symbol] = (ts_ms, ordinal + 1)
        return ts_ms * DERIVED_ID_SLOTS + ordinal

    def rows(self) -> Iterator[tuple[int, FileRow]]:
        """(sort key ns, row item); rows that fail get the previous row's time, so they keep their place."""
        last_ns = 0
        with _open_text(self.path) as fh:
            for line_no, row, problem in _records(fh):
                origin = f"{self.path.name} line {line_no}"
                if problem:
                    yield last_ns, FileRow(last_ns, _raw(row), origin, problem)
                    continue
                try:
                    ts_ms, frame = self.frame(row)  # type: ignore[arg-type]
                except RowError as exc:
                    yield last_ns, FileRow(last_ns, _raw(row), origin, str(exc))
                    continue
                last_ns = ts_ms * 1_000_000
                yield last_ns, FileRow(last_ns, frame, origin)


def _raw(row: object) -> bytes:
    return (row if isinstance(row, str) else json.dumps(row, default=str)).encode(errors="replace")


Record = tuple[int, dict[str, object] | str, str]  # line number (1 = first line), row or raw line, problem


def _records(fh: IO[str]) -> Iterator[Record]:
    """CSV with a header, or NDJSON, told by the first non-blank line; streamed, line by line."""
    lines = enumerate(fh, 1)
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        return
    n, line = first
    rest = itertools.chain([first], lines)
    yield from _ndjson(rest) if line.lstrip().startswith("{") else _csv(rest, n - 1)


def _ndjson(lines: Iterator[tuple[int, str]]) -> Iterator[Record]:
    for n, line in lines:
        if not line.strip():
            continue
        try:
            # numbers as the exact text they were written as: 61837.63 must not become a float
            doc = json.loads(line, parse_float=str, parse_int=str)
        except (ValueError, RecursionError) as exc:
            yield n, line[:1000], f"not JSON: {exc}"
            continue
        if not isinstance(doc, dict):
            yield n, line[:1000], "not a JSON object"
            continue
        yield n, {str(k).lower(): v for k, v in doc.items()}, ""


def _csv(lines: Iterator[tuple[int, str]], skipped: int) -> Iterator[Record]:
    reader = csv.reader(line for _, line in lines)
    header: list[str] | None = None
    for cells in reader:
        n = skipped + reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                yield n, ",".join(cells)[:1000], f"header has no {', '.join(missing)} (a tick file's header is " \
                    f"{','.join(COLUMNS)}[,side][,trade_id])"
                return
            continue
        yield n, dict(zip(header, cells, strict=False)), ""


class TickFileSource:
    name = "ticks"

    def __init__(self, files: list[Path], speed: float = 0.0) -> None:
        check_files(files, "tick", "--tick-file or TICK_FILES")
        self.files = files
        self.speed = speed

    async def items(self) -> AsyncIterator[SourceItem]:
        merged = heapq.merge(*(_RowReader(f).rows() for f in self.files), key=lambda item: item[0])
        yield FeedEvent("connected", f"tick files: {len(self.files)}")
        async for _, row in paced(merged, self.speed):
            yield row
        yield FeedEvent("finished", "end of tick files")
