"""A Redis Streams consumer-group loop with at-least-once delivery made exactly-once by idempotent effects.

An entry is acknowledged only after its handler returned, i.e. after its effects are durable. On start the
consumer re-reads its own pending entries (id 0), then claims entries other consumers abandoned
(XAUTOCLAIM, idle longer than `claim_idle_ms`), then reads new ones. On stop it finishes the batch in hand.

A failing batch is told apart by `worker.failures.is_transient`: a transient failure (Redis, disk, DuckDB I/O,
memory) is retried in place until it passes; any other failure is retried `retries` times, then the batch is
bisected until the entries that fail alone are found, and each is quarantined: moved to `stream:deadletter`
with its reason, acknowledged and counted, while the rest of the batch is processed normally. A handler may
also reject entries itself (it returns their ids and reasons): those are quarantined at once.
Every wait watches the stop event, so SIGTERM never waits for a retry loop; a batch left unfinished by a stop
stays pending and is re-read on the next start.

`flat_fields=True` hands the handler each entry's fields as the flat `[name, value, ...]` list of the reply
(hiredis' parse, nothing more) instead of a dict: redis-py's reply parsing (a dict per entry) costs more than the
candle handler's whole work on a book ticker it skips. `qs_common.codec.decode_batch` reads both forms.
Such a consumer (on a single Redis node) also reads new entries and acknowledges through connections of its own
(`worker.raw_link`): XACK packed by hiredis in one call, and while a full batch is being stored the next one is
already asked for, so redis-server builds it on the other core instead of the consumer waiting for it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.exceptions import RedisError

from qs_common import deadletters, keys
from qs_common.groups import ensure_group
from qs_common.redis_client import transactional
from worker.failures import is_transient, one_line
from worker.raw_link import RawLink

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
FlatEntry = tuple[bytes, list[bytes]]  # fields as the reply's [name, value, name, value, ...] (flat_fields=True)
AnyEntry = tuple[bytes, Any]  # either form
Rejected = tuple[bytes, str]  # an entry id the handler refuses, and why
Handler = Callable[[list[Any]], list[Rejected] | None]  # list[Entry], or list[FlatEntry] with flat_fields


class StatusHandler(Protocol):
    """A worker's handler: called with each batch, and its counters go into the consumer's status record."""

    def __call__(self, entries: list[Entry], /) -> list[Rejected] | None: ...

    def status(self) -> dict[str, Any]: ...


RETRY_DELAY_S = 0.1  # first wait after a failing batch; doubles per failure
TRANSIENT_DELAY_MAX_S = 5.0


class Stopped(Exception):
    """Stop was requested while a batch waited for a retry; the batch stays pending for the next start."""


@dataclass
class ConsumerStats:
    entries: int = 0
    batches: int = 0
    failed_batches: int = 0
    last_entry_id: str = ""
    state: str = "starting"
    quarantined: int = 0
    last_quarantine: str = ""  # reason of the newest quarantined entry
    last_error: str = ""  # reason of the newest failed attempt (transient or not)


class GroupConsumer:
    def __init__(
        self, r: redis.Redis, stream: str, group: str, consumer: str, handler: Handler,
        batch: int = 5_000, block_ms: int = 200, claim_idle_ms: int = 30_000, retries: int = 3,
        deadletter_maxlen: int = deadletters.maxlen(64), source: str | None = None, flat_fields: bool = False,
        linger_ms: int = 0,
    ) -> None:
        self.r = r
        # Reads through a client of the same connections whose stream replies are left as hiredis gives them.
        # A cluster client keeps redis-py's parse (its replies are then converted).
        self._raw: redis.Redis | None = None
        # New entries are read, and every batch acknowledged, through connections of their own (module docstring)
        self._reads: RawLink | None = None
        self._acks: RawLink | None = None
        if flat_fields and isinstance(r, redis.Redis):
            self._raw = redis.Redis(connection_pool=r.connection_pool)
            for command in ("XREADGROUP", "XAUTOCLAIM"):
                self._raw.set_response_callback(command, _as_is)
            self._reads, self._acks = RawLink(r.connection_pool), RawLink(r.connection_pool)
        self.flat_fields = flat_fields
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.linger_s = linger_ms / 1000  # after a batch that was not full: let the next one gather
        self.claim_idle_ms = claim_idle_ms
        self.retries = retries
        self.deadletter_maxlen = deadletter_maxlen
        self.source = source or f"worker-{group}"  # the dead letters' `source` and the status record's name
        self.stats = ConsumerStats()
        self._last_claim = 0.0
        self._stop = threading.Event()  # run() puts the process's stop event here

    def _set_state(self, state: str, why: str = "") -> None:
        if state != self.stats.state:
            log.info("%s/%s %s%s", self.group, self.consumer, state, f": {why}" if why else "")
            self.stats.state = state

    def _wait(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stopped

    def _process(self, entries: list[AnyEntry], stream: str | None = None) -> None:
        """Handle and settle one batch: of `stream` (default: this consumer's one stream), or, with stream None in
        a consumer of several streams, a batch whose ids are `TaggedId`s that name their streams."""
        if not entries:
            return
        poison = self._handle(entries, self.retries)
        self._settle(entries, poison, stream or self.stream)
        self._set_state("running")

    def _handle(self, entries: list[AnyEntry], attempts: int) -> list[tuple[AnyEntry, str]]:
        """Run the handler over `entries` until their effects are stored; return the entries to quarantine.

        `attempts`: how many data failures in a row make this batch suspect (then it is bisected). Transient
        failures never count: they are retried with a growing wait for as long as they last.
        """
        failures = 0
        delay = RETRY_DELAY_S
        transient_delay = RETRY_DELAY_S
        while True:
            try:
                rejected = self.handler(entries) or []
                break
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # BaseException: a polars panic (pyo3 PanicException) is one too
                self.stats.failed_batches += 1
                reason = one_line(exc)
                self.stats.last_error = reason
                if is_transient(exc):
                    if self.stats.state != "retrying":
                        log.warning("%s: batch of %d failed (transient, retrying until it passes): %s",
                                    self.group, len(entries), reason)
                    self._set_state("retrying", reason)
                    self._wait(transient_delay)
                    transient_delay = min(transient_delay * 2, TRANSIENT_DELAY_MAX_S)
                    continue
                failures += 1
                if failures < attempts:
                    log.warning("%s: batch of %d failed (%d of %d): %s", self.group, len(entries), failures,
                                attempts, reason)
                    self._set_state("retrying", reason)
                    self._wait(delay)
                    delay *= 2
                    continue
                if len(entries) == 1:
                    return [(entries[0], reason)]
                # Deterministic: find the entries that fail alone. Each half is tried once (its failure is
                # already established); halves that pass are stored, exactly once, like any batch.
                if attempts > 1:
                    log.warning("%s: batch of %d keeps failing, bisecting it: %s", self.group, len(entries), reason)
                mid = len(entries) // 2
                return self._handle(entries[:mid], 1) + self._handle(entries[mid:], 1)
        if not rejected:
            return []
        by_id = dict(entries)
        return [((eid, by_id[eid]), reason) for eid, reason in rejected if eid in by_id]

    def _settle(self, entries: list[AnyEntry], poison: list[tuple[AnyEntry, str]], stream: str) -> None:
        """Dead-letter the poison entries and acknowledge the whole batch in one MULTI: never one without the other.
        On a Redis Cluster (no MULTI across slots) the dead letters are written first, then the acknowledgements:
        a failure in between re-reads the entries, at-least-once as everywhere else."""
        ids = [entry_id for entry_id, _ in entries]
        recv = time.time_ns()
        delay = RETRY_DELAY_S
        multi = bool(poison) and transactional(self.r)
        while True:
            try:
                pipe = self.r.pipeline(transaction=multi)
                for (entry_id, fields), reason in poison:
                    pipe.xadd(keys.DEAD_LETTER_STREAM, {  # type: ignore[arg-type]
                        "reason": deadletters.reason_text(reason), "raw": deadletters.raw_json(as_mapping(fields)),
                        "recv": recv, "source": self.source, "entry_id": entry_id,
                        "stream": getattr(entry_id, "stream", stream),
                    }, maxlen=self.deadletter_maxlen, approximate=True)
                if poison and not multi:
                    pipe.execute()
                    pipe = self.r.pipeline(transaction=False)
                if poison or self._acks is None:
                    for acked_stream, acked in ack_groups(ids, stream).items():
                        pipe.xack(acked_stream, self.group, *acked)
                    pipe.execute()
                else:  # the hot path: one packed XACK per stream, no pipeline
                    for acked_stream, acked in ack_groups(ids, stream).items():
                        self._acks.call(b"XACK", acked_stream, self.group, *acked)
                break
            except (RedisError, OSError) as exc:  # the handler's effects are stored: only this step is repeated
                self.stats.last_error = one_line(exc)
                self._set_state("retrying", self.stats.last_error)
                self._wait(delay)
                delay = min(delay * 2, TRANSIENT_DELAY_MAX_S)
        for (entry_id, _), reason in poison:
            log.warning("%s: quarantined entry %s of %s to %s: %s", self.group, entry_id.decode(),
                        getattr(entry_id, "stream", stream), keys.DEAD_LETTER_STREAM, reason)
        if poison:
            self.stats.quarantined += len(poison)
            self.stats.last_quarantine = poison[-1][1]
        self.stats.entries += len(entries)
        self.stats.batches += 1
        self.stats.last_entry_id = ids[-1].decode()

    def _ask_new(self, block: int | None) -> None:
        """Send XREADGROUP for new entries on the read connection; `_new_entries` reads its reply."""
        assert self._reads is not None
        blocking = () if block is None else (b"BLOCK", block)
        self._reads.send(b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", self.batch, *blocking,
                         b"STREAMS", self.stream, b">")

    def _new_entries(self) -> list[tuple[bytes, Any]]:
        assert self._reads is not None
        return _reply_entries(self._reads.receive())

    def _read(self, start: str, block: int | None = None, stream: str | None = None) -> list[tuple[bytes, Any]]:
        """XREADGROUP from `start` ('>' for new entries); fields are None for entries deleted meanwhile."""
        stream = stream or self.stream
        if self._reads is not None and start == ">" and stream == self.stream:
            self._ask_new(block)
            return self._new_entries()
        if self._raw is not None:
            raw: Any = self._raw.xreadgroup(self.group, self.consumer, {stream: start}, count=self.batch,
                                            block=block)
            if not raw:
                return []
            entries = _reply_entries(raw)
            if start == ">":  # new entries always have fields: hand over hiredis' [id, fields] pairs as they are
                return entries
            return [(e[0], e[1] or None) for e in entries]
        reply: Any = self.r.xreadgroup(self.group, self.consumer, {stream: start}, count=self.batch, block=block)
        return self._entries(reply[0][1]) if reply else []

    def _entries(self, reply: list[Any]) -> list[tuple[bytes, Any]]:
        """redis-py's parsed entries in the handler's form; a pending entry deleted from the stream comes back with
        no fields (None or {} by redis-py version): None."""
        return [(eid, self._fields(fields) or None) for eid, fields in reply]

    def _fields(self, fields: Mapping[bytes, bytes] | None) -> Any:
        """redis-py's dict, or the flat list a flat_fields handler expects (a cluster client's replies)."""
        if not self.flat_fields or not fields:
            return fields
        return [x for pair in fields.items() for x in pair]

    def _own_pending(self, stream: str | None = None) -> None:
        """Entries delivered to this consumer before a crash and never acknowledged (with a batch read ahead, up
        to two batches: one log line says how many in all)."""
        stream = stream or self.stream
        start = "0"
        told = False
        while True:
            raw = self._read(start, stream=stream)
            if not raw:
                return
            gone = [eid for eid, fields in raw if fields is None]
            if gone:  # deleted from the stream by someone else: nothing left to process
                self.r.xack(stream, self.group, *gone)
            entries = [(eid, fields) for eid, fields in raw if fields is not None]
            if entries:
                if not told:
                    told = True
                    log.info("%s: re-reading %d pending entries", self.group, self._mine_pending(stream))
                self._process(self._batch_of(stream, entries), stream)
            start = raw[-1][0].decode()

    def _mine_pending(self, stream: str) -> int:
        """How many entries of `stream` are pending to this consumer (XPENDING's summary)."""
        summary: Any = self.r.xpending(stream, self.group)
        for c in summary.get("consumers") or []:
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if name == self.consumer:
                return int(c["pending"])
        return 0

    def _batch_of(self, stream: str, entries: list[AnyEntry]) -> list[AnyEntry]:
        """Entries of one stream as the handler gets them (a consumer of several streams may tag their ids)."""
        return entries

    def _claim_abandoned(self, stream: str | None = None) -> None:
        stream = stream or self.stream
        cursor = "0-0"
        client = self._raw if self._raw is not None else self.r
        while True:
            reply: Any = client.xautoclaim(
                stream, self.group, self.consumer, self.claim_idle_ms, start_id=cursor, count=self.batch
            )
            # [cursor, [[id, fields], ...], deleted ids]: entries deleted from the stream have no fields
            cursor = reply[0]
            entries = [(e[0], e[1] if self._raw is not None else self._fields(e[1])) for e in reply[1] if e[1]]
            if entries:
                log.info("%s: claimed %d abandoned entries", self.group, len(entries))
                self._process(self._batch_of(stream, entries), stream)
            if cursor in (b"0-0", "0-0"):
                return

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        if self.flat_fields:
            relax_gc()
        try:
            while not stop.is_set():
                try:
                    ensure_group(self.r, self.stream, self.group)
                    self._own_pending()
                    self._claim_abandoned()
                    self._set_state("running")
                    self._run_new(stop)
                    return
                except Stopped:
                    return
                except (RedisError, OSError) as exc:
                    self._set_state("redis-down", str(exc))
                    self._close_links()  # a reply still owed on them would be misread as the next one
                    stop.wait(1.0)
        finally:
            self._close_links()

    def _run_new(self, stop: threading.Event) -> None:
        """New entries until stop. With a read connection, a full batch asks for the next one before it is stored
        (the server builds it meanwhile); a batch asked for is always read and stored, stop or not, so a stop
        leaves nothing delivered behind (it would wait for the next start, or a claim). Only a stop during a failing
        batch's retry wait (`Stopped`) leaves the batch asked for pending, like the failing batch itself."""
        asked = False
        while not stop.is_set() or asked:
            if time.monotonic() - self._last_claim > self.claim_idle_ms / 1000:
                self._last_claim = time.monotonic()
                self._claim_abandoned()
            if asked:
                fresh, asked = self._new_entries(), False
            else:
                fresh = self._read(">", self.block_ms)
            if not fresh:
                continue
            if self._reads is not None and len(fresh) >= self.batch and not stop.is_set():
                self._ask_new(None)  # no BLOCK: a full batch says more are there; an empty reply costs one trip
                asked = True
            self._process(fresh if self._raw is not None else
                          [(eid, fields) for eid, fields in fresh if fields is not None])
            if self.linger_s and not asked and len(fresh) < self.batch:
                stop.wait(self.linger_s)

    def _close_links(self) -> None:
        for link in (self._reads, self._acks):
            if link is not None:
                link.close()

    def lag(self) -> dict[str, int | None]:
        """Entries not yet delivered to the group, and delivered but not acknowledged."""
        groups: Any = self.r.xinfo_groups(self.stream)
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                return {"lag": g.get("lag"), "pending": g.get("pending")}
        return {"lag": None, "pending": None}


class TaggedId(bytes):
    """An entry id that knows its stream, for batches merged from several streams: ids repeat across streams
    (each stream numbers its own), so equality and hashing include the stream. It is still the id's bytes for
    XACK, the codec and `stream_id`."""

    stream: str

    def __new__(cls, raw: bytes, stream: str) -> TaggedId:
        obj = super().__new__(cls, raw)
        obj.stream = stream
        return obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaggedId):
            return self.stream == other.stream and bytes.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:  # bytes has its own __ne__, which would ignore the stream
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((self.stream, bytes(self)))


def ack_groups(ids: list[bytes], stream: str) -> dict[str, list[bytes]]:
    """The ids to acknowledge, by stream: a TaggedId's own, else `stream`."""
    if set(map(type, ids)) <= {bytes}:  # one stream's batch (the hot path): no lookup per id, no Python loop
        return {stream: ids} if ids else {}
    out: dict[str, list[bytes]] = {}
    for eid in ids:
        out.setdefault(getattr(eid, "stream", stream), []).append(eid)
    return out


def relax_gc() -> None:
    """Fewer garbage collections in a process that reads raw replies: a batch allocates two lists per entry, so
    CPython's default gen-0 threshold (700) runs a collection every ~350 entries and the older generations walk the
    whole batch again and again (measured: ~30 % of the candle group's CPU). Nothing here makes reference cycles to
    speak of, so collecting less often costs no memory; start-up objects are frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _as_is(response: Any, **_options: Any) -> Any:
    return response


def _reply_entries(raw: Any) -> list[tuple[bytes, Any]]:
    """A raw XREADGROUP reply of one stream -> its [id, fields] entries, as hiredis gives them.
    RESP2: [[stream, entries]]; RESP3: {stream: entries}; no entries: None; fields are None for a pending entry
    deleted from the stream."""
    if not raw:
        return []
    return next(iter(raw.values())) if isinstance(raw, dict) else raw[0][1]  # type: ignore[no-any-return]


def as_mapping(fields: Mapping[bytes, bytes] | list[bytes]) -> Mapping[bytes, bytes]:
    """Fields as a dict, whichever form the handler got them in (a dead letter keeps them whole)."""
    return fields if isinstance(fields, Mapping) else dict(zip(fields[::2], fields[1::2], strict=True))
