"""The source interface: an async iterator of `(recv_ns, raw_frame)` and the odd connection event.

Every source yields raw frame bytes exactly as received (or recorded, or generated); the one parser turns
them into ticks. Connection events (connected, disconnected) let ingest record the intervals without data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class FeedEvent:
    kind: Literal["connected", "disconnected", "finished"]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FileRow:
    """A frame made from one row of an input file (tick files), so that a dead letter names its file and line.

    `problem` is why the row could not become a frame at all ("" when it did); `raw` is then the row itself."""

    recv_ns: int
    raw: bytes
    origin: str  # "<file name> line <n>"
    problem: str = ""


SourceItem = tuple[int, bytes] | FileRow | FeedEvent


class FrameSource(Protocol):
    name: str

    def items(self) -> AsyncIterator[SourceItem]:
        """Frames as `(recv_ns, raw)` (or `FileRow`s) in receive order, interleaved with `FeedEvent`s."""
        ...
