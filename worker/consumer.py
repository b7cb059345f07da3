"""A Redis Streams consumer-group loop with at-least-once delivery made exactly-once by idempotent effects.

An entry is acknowledged only after its handler returned, i.e. after its effects are durable. On start the
consumer re-reads its own pending entries (id 0), then claims entries other consumers abandoned
(XAUTOCLAIM, idle longer than `claim_idle_ms`), then reads new ones. On stop it finishes the batch in hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
Handler = Callable[[list[Entry]], None]


@dataclass
class ConsumerStats:
    entries: int = 0
    batches: int = 0
    failed_batches: int = 0
    last_entry_id: str = ""
    state: str = "starting"
    extra: dict[str, Any] = field(default_factory=dict)


def ensure_group(r: redis.Redis, stream: str, group: str) -> None:
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class GroupConsumer:
    def __init__(
        self, r: redis.Redis, stream: str, group: str, consumer: str, handler: Handler,
        batch: int = 5_000, block_ms: int = 200, claim_idle_ms: int = 30_000,
    ) -> None:
        self.r = r
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stats = ConsumerStats()
        self._last_claim = 0.0

    def _set_state(self, state: str, why: str = "") -> None:
        if state != self.stats.state:
            log.info("%s/%s %s%s", self.group, self.consumer, state, f": {why}" if why else "")
            self.stats.state = state

    def _process(self, entries: list[Entry]) -> None:
        if not entries:
            return
        while True:
            try:
                self.handler(entries)
                break
            except Exception:  # a batch that fails is retried, never skipped: nothing may be lost
                self.stats.failed_batches += 1
                log.exception("%s: batch of %d failed; retrying in 1 s", self.group, len(entries))
                self._set_state("retrying")
                time.sleep(1.0)
        ids = [entry_id for entry_id, _ in entries]
        self.r.xack(self.stream, self.group, *ids)
        self.stats.entries += len(entries)
        self.stats.batches += 1
        self.stats.last_entry_id = ids[-1].decode()
        self._set_state("running")

    def _read(self, start: str, block: int | None = None) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """XREADGROUP from `start` ('>' for new entries); fields are None for entries deleted meanwhile."""
        reply: Any = self.r.xreadgroup(self.group, self.consumer, {self.stream: start}, count=self.batch, block=block)
        # a pending entry deleted from the stream comes back with no fields (None or {} by redis-py version)
        return [(eid, fields or None) for eid, fields in reply[0][1]] if reply else []

    def _own_pending(self) -> None:
        """Entries delivered to this consumer before a crash and never acknowledged."""
        start = "0"
        while True:
            raw = self._read(start)
            if not raw:
                return
            gone = [eid for eid, fields in raw if fields is None]
            if gone:  # deleted from the stream by someone else: nothing left to process
                self.r.xack(self.stream, self.group, *gone)
            entries = [(eid, fields) for eid, fields in raw if fields is not None]
            if entries:
                log.info("%s: re-reading %d pending entries", self.group, len(entries))
                self._process(entries)
            start = raw[-1][0].decode()

    def _claim_abandoned(self) -> None:
        cursor = "0-0"
        while True:
            reply: Any = self.r.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=cursor, count=self.batch
            )
            cursor, entries = reply[0], [(eid, fields) for eid, fields in reply[1] if fields]
            if entries:
                log.info("%s: claimed %d abandoned entries", self.group, len(entries))
                self._process(entries)
            if cursor in (b"0-0", "0-0"):
                return

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ensure_group(self.r, self.stream, self.group)
                self._own_pending()
                self._claim_abandoned()
                self._set_state("running")
                while not stop.is_set():
                    if time.monotonic() - self._last_claim > self.claim_idle_ms / 1000:
                        self._last_claim = time.monotonic()
                        self._claim_abandoned()
                    fresh = self._read(">", self.block_ms)
                    if fresh:
                        self._process([(eid, fields) for eid, fields in fresh if fields is not None])
                return
            except (RedisError, OSError) as exc:
                self._set_state("redis-down", str(exc))
                stop.wait(1.0)

    def lag(self) -> dict[str, int | None]:
        """Entries not yet delivered to the group, and delivered but not acknowledged."""
        groups: Any = self.r.xinfo_groups(self.stream)
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                return {"lag": g.get("lag"), "pending": g.get("pending")}
        return {"lag": None, "pending": None}
