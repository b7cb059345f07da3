"""Replay recorded frames: `<receive ns> <frame as received>` per line, gzip or plain, several files merged.

Files are merged in receive-time order. At `speed` 1 the replay keeps the recorded spacing, at 2 twice as
fast, and at 0 as fast as possible. Lines without a leading integer receive time are passed on as they are
(receive time 0), so the parser dead-letters them instead of the replay stopping.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from ingest.sources.base import FeedEvent, SourceItem

_YIELD_EVERY = 2_000  # let other tasks (status, flush) run during a full-speed replay


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
        if not files:
            raise ValueError("replay needs at least one file")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"replay file not found: {', '.join(missing)}")
        self.files = files
        self.speed = speed

    async def items(self) -> AsyncIterator[SourceItem]:
        merged = heapq.merge(*(read_recording(f) for f in self.files), key=lambda item: item[0])
        yield FeedEvent("connected", f"replay of {len(self.files)} file(s)")
        first_ns: int | None = None
        start = time.monotonic()
        for n, (recv_ns, raw) in enumerate(merged):
            if self.speed > 0 and recv_ns:
                if first_ns is None:
                    first_ns = recv_ns
                due = (recv_ns - first_ns) / 1e9 / self.speed
                ahead = due - (time.monotonic() - start)
                if ahead > 0.001:
                    await asyncio.sleep(ahead)
            elif n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield recv_ns, raw
        yield FeedEvent("finished", "end of recordings")
