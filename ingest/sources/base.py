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


SourceItem = tuple[int, bytes] | FeedEvent


class FrameSource(Protocol):
    name: str

    def items(self) -> AsyncIterator[SourceItem]:
        """Frames as `(recv_ns, raw)` in receive order, interleaved with `FeedEvent`s."""
        ...
