"""Replay recorded frames: `<receive ns> <frame as received>` per line, gzip or plain, several files merged.

Files are merged in receive-time order. At `speed` 1 the replay keeps the recorded spacing, at 2 twice as
fast, and at 0 as fast as possible. Lines without a leading integer receive time are passed on as they are
(receive time 0), so the parser dead-letters them instead of the replay stopping.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from ingest.sources.base import FeedEvent, SourceItem
from ingest.sources.files import check_files, paced
from qs_common.venues.binance.config import SNAPSHOT_STREAM


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")  # type: ignore[return-value]


_STREAM_PREFIX = b'{"stream":"'
_SNAPSHOT_PREFIX = b'{"lastUpdateId"'
SCAN_LINES = 10_000  # how far into a recording its symbol is looked for


def recording_symbol(path: Path) -> bytes | None:
    """The symbol (lower case, as in stream names) of the first combined-stream frame of a recording.

    A recording is one connection's frames of one symbol (../shared/realdata/README.md); its REST depth snapshot
    line names no symbol, so it is the recording's."""
    with _open(path) as fh:
        for n, line in enumerate(fh):
            at = line.find(_STREAM_PREFIX)
            if at >= 0:
                start = at + len(_STREAM_PREFIX)
                sym = line[start : line.find(b"@", start)]
                return sym.lower() if sym.isalnum() else None
            if n >= SCAN_LINES:
                break
    return None


def read_recording(path: Path) -> Iterator[tuple[int, bytes]]:
    """Lines of one recording as `(recv_ns, frame)`, in file order. The REST depth snapshot line is wrapped as a
    `<symbol>@depthSnapshot` frame of the recording's symbol, so ingest (DEPTH on) can publish it for the book."""
    symbol = recording_symbol(path)
    with _open(path) as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            head, sep, rest = line.partition(b" ")
            if not (sep and head.isdigit()):
                yield 0, line
                continue
            if symbol is not None and rest.startswith(_SNAPSHOT_PREFIX):
                rest = b'{"stream":"' + symbol + b"@" + SNAPSHOT_STREAM.encode() + b'","data":' + rest + b"}"
            yield int(head), rest


class ReplaySource:
    name = "replay"

    def __init__(self, files: list[Path], speed: float = 0.0) -> None:
        check_files(files, "replay", "--replay-file or REPLAY_FILES")
        self.files = files
        self.speed = speed

    async def items(self) -> AsyncIterator[SourceItem]:
        merged = heapq.merge(*(read_recording(f) for f in self.files), key=lambda item: item[0])
        yield FeedEvent("connected", f"replay of {len(self.files)} file(s)")
        async for recv_ns, raw in paced(merged, self.speed):
            yield recv_ns, raw
        yield FeedEvent("finished", "end of recordings")
