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


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")  # type: ignore[return-value]


def read_recording(path: Path) -> Iterator[tuple[int, bytes]]:
    """Lines of one recording as `(recv_ns, frame)`, in file order."""
    with _open(path) as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            head, sep, rest = line.partition(b" ")
            if sep and head.isdigit():
                yield int(head), rest
            else:
                yield 0, line


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
