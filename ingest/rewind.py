"""Notice when Redis went back in time, and which trades it took with it.

With `appendfsync everysec` an OS crash loses up to a second of the AOF; a Redis restarted without
persistence loses everything. Either way entries that our XADDs saw acknowledged are gone, and nothing else
notices: the feed never broke. Ingest is the tick stream's only writer, so the stream's `last-generated-id`
and `entries-added` (Redis >= 7) must never fall below what its own confirmed writes left them at. The watch
keeps the recent confirmed trades (id, entries-added after it, symbol, trade time), so a rewind can be turned
into a gap per symbol from the earliest lost trade.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Confirmed trades remembered. At Binance's live rates (tens to a few hundred trades a second per symbol)
# that is well over the one second an everysec AOF can lose; a full-speed replay outruns it, which only
# matters if Redis loses more than the ring holds (then `beyond_memory` says so).
RECENT_TRADES = 20_000


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class StreamState:
    last_id: tuple[int, int]
    entries_added: int | None  # None before Redis 7


def stream_state(reply: Any) -> StreamState:
    """`XINFO STREAM` as a raw reply (flat list), as redis-py's dict, or None for a stream that does not exist."""
    if reply is None:
        return StreamState((0, 0), 0)
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in reply.items()}
    added = info.get("entries-added")
    return StreamState(parse_id(info["last-generated-id"]), None if added is None else int(added))


@dataclass(frozen=True, slots=True)
class Lost:
    """What a rewind took: the stream as we had confirmed it, as it is now, and per symbol its earliest lost trade."""

    confirmed_id: tuple[int, int]
    confirmed_added: int | None
    now: StreamState
    first_trade_ms: dict[str, int] = field(default_factory=dict)
    beyond_memory: bool = False  # the oldest remembered trade was lost too: the loss may reach further back

    def describe(self) -> str:
        symbols = ", ".join(f"{s} from {ms} ms" for s, ms in sorted(self.first_trade_ms.items())) or "no trades"
        return (f"stream last id {self.now.last_id[0]}-{self.now.last_id[1]} (we had confirmed "
                f"{self.confirmed_id[0]}-{self.confirmed_id[1]}), entries-added {self.now.entries_added} (we had "
                f"confirmed {self.confirmed_added}); acknowledged ticks lost: {symbols}"
                + ("; the loss may reach further back than ingest remembers" if self.beyond_memory else ""))


class RewindWatch:
    def __init__(self, recent: int = RECENT_TRADES) -> None:
        self.last_id: tuple[int, int] | None = None  # the newest id our XADDs got back
        self.added: int | None = None  # entries-added right after that write
        # (entry id as returned, entries-added right after it, symbol, trade ms), oldest first
        self.recent: deque[tuple[bytes, int | None, str, int]] = deque(maxlen=recent)
        self.rewinds = 0

    def check(self, now: StreamState) -> Lost | None:
        """Compare the stream as Redis has it now with our confirmed writes; a Lost if it went back."""
        if self.last_id is None:
            return None
        behind = now.last_id < self.last_id or (
            now.entries_added is not None and self.added is not None and now.entries_added < self.added)
        if not behind:
            return None
        self.rewinds += 1
        starts: dict[str, int] = {}
        oldest_lost = False
        for i, (raw_id, added, symbol, ms) in enumerate(self.recent):
            gone = parse_id(raw_id) > now.last_id or (
                added is not None and now.entries_added is not None and added > now.entries_added)
            if gone:
                oldest_lost = oldest_lost or i == 0
                if ms < starts.get(symbol, ms + 1):
                    starts[symbol] = ms
        lost = Lost(self.last_id, self.added, now, starts, oldest_lost)
        # What Redis holds now is the new baseline; the lost trades are reported once.
        self.last_id, self.added = now.last_id, now.entries_added
        self.recent = deque((e for e in self.recent if parse_id(e[0]) <= now.last_id), maxlen=self.recent.maxlen)
        return lost

    def confirmed(self, before: StreamState | None, ids: list[bytes], meta: list[tuple[str, int] | None]) -> None:
        """Our batch's first `len(ids)` XADDs were acknowledged with these ids (`before`: the stream before it)."""
        if not ids:
            return
        base = None if before is None else before.entries_added
        recent = self.recent
        for i, m in enumerate(meta[: len(ids)]):
            if m is not None:
                recent.append((ids[i], None if base is None else base + i + 1, m[0], m[1]))
        self.last_id = parse_id(ids[-1])
        self.added = None if base is None else base + len(ids)
