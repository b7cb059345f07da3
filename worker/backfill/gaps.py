"""Ingest's gap records (`stream:gaps`), read through the `gap-repair` consumer group.

An entry, as ingest writes it: `start_ms` (last trade before the disconnect), `end_ms` (first trade after
it), `symbols` (comma list), `reason`, `venue`. An entry is acknowledged only once its repair is stored;
until then it stays pending in the group, so a worker that stops is given it again on start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from qs_common import keys
from qs_common.groups import ensure_group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gap:
    entry_id: str
    start_ms: int
    end_ms: int
    symbols: tuple[str, ...]
    reason: str
    venue: str


def parse_gap(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Gap | None:
    """One stream entry -> a gap, or None when it is malformed (it is then acknowledged and skipped)."""
    eid = _text(entry_id)
    try:
        start, end = int(fields[b"start_ms"]), int(fields[b"end_ms"])
        symbols = tuple(s.strip().upper() for s in fields[b"symbols"].decode().split(",") if s.strip())
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if end < start or not symbols:
        return None
    return Gap(eid, start, end, symbols, fields.get(b"reason", b"").decode(errors="replace"),
               fields.get(b"venue", b"").decode(errors="replace"))


class GapReader:
    def __init__(self, r: redis.Redis, consumer: str, stream: str = keys.GAPS_STREAM,
                 group: str = keys.GAPS_GROUP) -> None:
        self.r = r
        self.consumer = consumer
        self.stream = stream
        self.group = group
        self._backlog_from: str | None = "0"  # own pending entries first, then new ones

    def read(self, count: int = 100) -> list[Gap]:
        """New gaps; on the first call, those delivered to this consumer before and never acknowledged."""
        ensure_group(self.r, self.stream, self.group)
        start = self._backlog_from or ">"
        reply: Any = self.r.xreadgroup(self.group, self.consumer, {self.stream: start}, count=count)
        entries = [e for e in reply[0][1] if e[1] is not None] if reply else []
        if self._backlog_from is not None:
            self._backlog_from = None if len(entries) < count else _text(entries[-1][0])
        out = []
        for entry_id, fields in entries:
            gap = parse_gap(entry_id, fields)
            if gap is None:
                log.warning("skipping malformed gap entry %r", entry_id)
                self.ack(_text(entry_id))
            else:
                out.append(gap)
        return out

    def ack(self, entry_id: str) -> None:
        self.r.xack(self.stream, self.group, entry_id)

    def pending(self) -> int:
        info: Any = self.r.xpending(self.stream, self.group)
        return int(info["pending"]) if info else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
