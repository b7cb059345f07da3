"""Warm-up of new and reconfigured pair engines from the tick stream's recent history.

A pair added from the screen, or one whose window changed, would otherwise show nothing until `window` new
observations arrived. Instead the consumer reads back the newest ticks of the pairs' legs (XREVRANGE of the tick
stream, in pages, bounded), decodes them with the shared codec and replays them, oldest first, through the fresh
aligner and engine: the engine ends in the state it would have reached had it consumed those ticks live. Nothing is
published for the past; the caller publishes one entry for the newest state.

The history read stops before the batch the consumer is about to process (or at the newest entry when idle), and
the slot remembers the last id replayed, so no tick reaches an engine twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from qs_analytics.align import PairObservation
from qs_analytics.engine import PairEngine
from qs_common import codec
from worker import tick_values
from worker.consumer import Entry
from worker.pair_slots import PairSlot, stream_id

log = logging.getLogger(__name__)

PAGE = 5_000
# Entries read back at most per warm-up, all pairs together: the consumer waits for it, so it stays well under a
# second (measured in bench/bench_analytics_handler.py). Busy streams interleave many symbols: a pair of quiet
# legs may get fewer than it wants, and then warms up on what there is.
MAX_ENTRIES = 100_000
TICKS_PER_WINDOW = 2  # leg ticks wanted per window observation: a full window of spreads for the z-score and ADF


@dataclass
class Warmed:
    """What a replay left in the engine: the newest observation and its metrics (None when no tick matched)."""

    observations: int
    last: tuple[PairObservation, int, dict[str, float]] | None  # (observation, its tick's recv_ns, metrics)


def wanted(slot: PairSlot) -> int:
    return TICKS_PER_WINDOW * slot.settings.window


def read_history(
    r: redis.Redis, stream: str, slots: Iterable[PairSlot], before: bytes | None = None,
    max_entries: int | None = None,
) -> list[Entry]:
    """The stream's newest entries strictly before the id `before` (every entry when None), oldest first, read
    back until each slot has `wanted` ticks of its legs (of its price source's kind) or `max_entries` (default
    MAX_ENTRIES) were read."""
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    need: dict[str, int] = {}
    feeds: dict[tuple[bytes, bytes], list[str]] = {}  # (kind, symbol) -> the pairs the entry warms
    for slot in slots:
        need[slot.pair] = wanted(slot)
        kind = b"book" if slot.mid else b"trade"
        for sym in (slot.settings.y, slot.settings.x):
            feeds.setdefault((kind, sym.encode()), []).append(slot.pair)
    hi = "(" + before.decode() if before is not None else "+"
    pages: list[list[Entry]] = []
    read = 0
    while read < max_entries and any(n > 0 for n in need.values()):
        page: list[Entry] = r.xrevrange(stream, max=hi, min="-", count=min(PAGE, max_entries - read))  # type: ignore[assignment]
        if not page:
            break
        pages.append(page)
        read += len(page)
        for _, f in page:
            for pid in feeds.get((f.get(b"kind", b""), f.get(b"sym", b"")), ()):
                need[pid] -= 1
        hi = "(" + page[-1][0].decode()
    return [e for page in reversed(pages) for e in reversed(page)]


def replay(slot: PairSlot, batch: codec.DecodedBatch) -> Warmed:
    """Feed the decoded history to the slot's aligner and engine, as the live loop would, without publishing;
    an ADF that is due at the end runs once, so its figures are there at once too."""
    trades, books = batch.trades, batch.books
    legs = (slot.settings.y, slot.settings.x)
    engine, aligner = slot.engine, slot.aligner
    n = 0
    last = None
    for j in batch.order:
        try:
            if j >= 0:
                if slot.mid or trades.symbols[j] not in legs:
                    continue
                sym, ts, px, _ = tick_values.trade(trades, j)
                recv_ns = trades.recvs[j]
            else:
                if not slot.mid or books.symbols[~j] not in legs:
                    continue
                sym, ts, px = tick_values.book_mid(books, ~j)
                recv_ns = books.recvs[~j]
        except ValueError:  # quarantined when it was consumed live: the engine never saw it
            continue
        obs = aligner.update(sym, ts, px)
        if obs is None:
            continue
        try:
            metrics = engine.update(obs.ts_ms, obs.y, obs.x)
        except Exception:  # as in the live loop: an update that fails is skipped, the engine goes on
            log.exception("warm-up of %s: an update failed", slot.pair)
            continue
        n += 1
        last = (obs, recv_ns, metrics)
    if last is not None and engine.adf_due(last[0].ts_ms):
        engine.run_adf(last[0].ts_ms)
        last = (last[0], last[1], {**last[2], **adf_fields(engine)})
    return Warmed(n, last)


def adf_fields(engine: PairEngine) -> dict[str, float]:
    res = engine.last_adf
    if res is None or not res.ran:
        return {}
    out = {"adf_stat": res.statistic, "adf_pvalue": res.p_value, "adf_lags": float(res.lags_used)}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def warm(r: redis.Redis, stream: str, slots: list[PairSlot], before: bytes | None = None) -> dict[str, Warmed]:
    """Read the history once for all `slots`, replay it into each; pair id -> what it left. Each slot's
    `skip_until` is set to the newest id read."""
    if not slots:
        return {}
    entries = read_history(r, stream, slots, before)
    batch = codec.decode_batch(entries, order=True, times=True)
    last_id = stream_id(entries[-1][0]) if entries else None
    out = {}
    for slot in slots:
        slot.skip_until = last_id
        out[slot.pair] = replay(slot, batch)
    log.info("warmed %d pair(s) from %d recent ticks: %s", len(slots), len(entries),
             ", ".join(f"{p} ({w.observations} obs)" for p, w in out.items()))
    return out
