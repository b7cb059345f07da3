"""The source interface: an async iterator of `(recv_ns, raw_frame)` and the odd connection event.

Every source yields raw frame bytes exactly as received (or recorded, or generated); the one parser turns
them into ticks. Connection events (connected, disconnected) let ingest record the intervals without data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class FeedEvent:
    kind: Literal["connected", "disconnected", "finished"]
    reason: str = ""
    # the symbols whose data this connection carries; empty: all of them (one connection, or not known)
    symbols: frozenset[str] = frozenset()


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


@runtime_checkable
class BatchSource(Protocol):
    """A source that can hand items over a socket read at a time (live Binance): one await per read instead
    of one per frame, in the same order as `items()`."""

    def batches(self) -> AsyncIterator[list[SourceItem]]:
        ...


@runtime_checkable
class SymbolControl(Protocol):
    """A source whose symbols can change while it runs (live Binance, synthetic); file sources are not."""

    async def set_symbols(self, symbols: tuple[str, ...]) -> None:
        """Start and stop symbols; returns when the change took effect (or was given up on), so ingest may
        narrow its subscribed set only then."""
        ...

    def subscription_status(self) -> dict[str, Any]:
        """Fields for `status:ingest` (connections, streams, requests and refusals)."""
        ...
