"""The worker's book role: exact local order books from stream:depth, their top levels and metrics in Redis.

`BookHandler` is the `book` consumer group's handler. Entries are depth diffs and snapshots in stream order
(`qs_common.codec.decode_depth`); each symbol has one `qs_analytics.book.sync.BookSync`. A snapshot entry comes from a
replay (the recording's REST line) or from `SnapshotFetcher`, which fetches the REST depth when a book needs one
and adds it to the same stream: so a snapshot meets the diffs in arrival order, exactly as Binance's procedure
buffers them, and the consumer's hot loop never waits for HTTP. A snapshot that arrives while its book is
synchronised is not needed any more (an older one would rewind the book) and is ignored.

On a break the book is stale (kept at its last good state), the gap goes to stream:gaps with reason "depth gap",
a new snapshot is asked for and the resync counted. At the end of every batch each book it changed writes its top
`BOOK_LEVELS` to `book:depth:{SYMBOL}` and its metrics to `book:metrics:{SYMBOL}` (live, the venue sends a diff
every 100 ms, so that is each diff; a backlog is caught up with one write per book).

State is in memory: a restarted book role re-reads nothing already acknowledged, so it starts stale and asks
for a snapshot with the first diff, as after a break.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from typing import Any

import redis

from qs_analytics.alerts import AlertEvaluator, AlertRule
from qs_analytics.book.metrics import book_metrics
from qs_analytics.book.sync import Action, BookSync
from qs_common import codec, keys
from qs_common.depth import DepthDiff, DepthSnapshot, Venue
from qs_common.settings import Settings, Source
from qs_common.venues.binance.config import DEPTH_ENDPOINTS
from qs_common.venues.binance.config import Venue as BinanceVenue
from qs_common.venues.binance.wire import DepthSnapshotMsg, snapshot_from_msg
from worker.backfill.client import FetchError, KlinesClient, Stopped
from worker.consumer import Entry, Rejected

log = logging.getLogger(__name__)

GAP_REASON = "depth gap"
COST_NOTIONALS = (10_000, 100_000)  # quote notionals whose market-order cost is in the metrics (cost_buy_10000_bps)
RULES_REFRESH_S = 1.0
BOOK_METRIC_PREFIX = "book_"  # symbol alert rules on these metrics are the book role's (the analytics consumer
# never has them in its symbol statistics, so no rule fires twice)


def book_venue(venue: BinanceVenue) -> Venue:
    return "usdm" if venue is BinanceVenue.BINANCE_USDM else "spot"


def book_json(sync: BookSync, levels: int) -> dict[str, Any]:
    """What `book:depth:{SYMBOL}` and `GET /book` hold: exact decimal text, bids descending, asks ascending."""
    bids, asks = sync.book.top(levels)
    return {"symbol": sync.symbol, "last_update_id": sync.book.last_update_id, "event_time": sync.book.ts_event_ms,
            "stale": sync.stale, "bids": bids, "asks": asks}


class BookHandler:
    def __init__(
        self, settings: Settings, r: redis.Redis, wants_snapshot: queue.Queue[str] | None = None,
        fetcher: SnapshotFetcher | None = None,
    ) -> None:
        self.r = r
        self.fetcher = fetcher
        self.levels = settings.book_levels
        self.venue = settings.venue
        self.syncs: dict[str, BookSync] = {}
        self.wants_snapshot = wants_snapshot  # symbols whose book needs a REST snapshot (None: nobody fetches)
        self.bad_entries = 0
        self.resyncs = 0
        self.snapshots_ignored = 0
        self.last_event_ms: int | None = None
        self.published = 0
        self.alerts = AlertEvaluator([])
        self.alerts_fired = 0
        self._rules_loaded = -math.inf
        self._dirty: set[str] = set()

    def _sync(self, symbol: str) -> BookSync:
        sync = self.syncs.get(symbol)
        if sync is None:
            sync = self.syncs[symbol] = BookSync(symbol, book_venue(self.venue))
        return sync

    def _refresh_rules(self) -> None:
        """The symbol rules on `book_*` metrics from `alerts:rules`, re-read every second (bad ones: the analytics
        consumer counts and logs them)."""
        if time.monotonic() - self._rules_loaded < RULES_REFRESH_S:
            return
        self._rules_loaded = time.monotonic()
        rules = []
        for raw in self.r.hgetall(keys.ALERT_RULES).values():  # type: ignore[union-attr]
            try:
                rule = AlertRule.from_json(raw)
            except ValueError:
                continue
            if rule.symbol is not None and rule.metric.startswith(BOOK_METRIC_PREFIX):
                rules.append(rule)
        self.alerts.set_rules(rules)

    def __call__(self, entries: list[Entry]) -> list[Rejected]:
        self._refresh_rules()
        rejected: list[Rejected] = []
        gaps: list[dict[str, str | int]] = []
        out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for entry_id, fields in entries:
            try:
                item = codec.decode_depth(fields)
                action = self._feed(item)
            except (codec.DecodeError, ValueError) as exc:  # ValueError: a level the book cannot hold exactly
                self.bad_entries += 1
                rejected.append((entry_id, f"depth entry not applied: {exc}"))
                continue
            sync = self.syncs[item.symbol]
            if action in (Action.NEED_SNAPSHOT, Action.RESYNC) and self.wants_snapshot is not None:
                self.wants_snapshot.put(item.symbol)
            if action is Action.RESYNC:
                self.resyncs += 1
                gap = sync.gaps[-1]
                log.warning("%s: depth gap after update id %d (next diff %d..%d): book stale, resyncing",
                            item.symbol, gap.book_update_id, gap.first_id, gap.final_id)
                start = sync.book.ts_event_ms or gap.ts_event_ms
                gaps.append({"start_ms": start, "end_ms": gap.ts_event_ms, "symbols": item.symbol,
                             "reason": GAP_REASON, "venue": self.venue.value})
            if isinstance(item, DepthDiff):
                self.last_event_ms = item.ts_event_ms
            # one output per touched book at the end of the batch: only the newest state is written, so an output
            # per 100 ms bucket here was computed and thrown away (93 % of the role's CPU at BOOK_LEVELS 5,000)
            self._dirty.add(item.symbol)
        for symbol in self._dirty:  # the newest state of every book this batch touched
            out[symbol] = self._output(self.syncs[symbol])
        self._dirty.clear()
        self._write(out, gaps)
        return rejected

    def _feed(self, item: DepthDiff | DepthSnapshot) -> Action:
        sync = self._sync(item.symbol)
        if isinstance(item, DepthDiff):
            return sync.on_diff(item)
        if not sync.stale:
            self.snapshots_ignored += 1
            return Action.DROPPED
        return sync.on_snapshot(item)

    def _output(self, sync: BookSync) -> tuple[dict[str, Any], dict[str, Any]]:
        metrics: dict[str, Any] = {"symbol": sync.symbol, "last_update_id": sync.book.last_update_id,
                                   "event_time": sync.book.ts_event_ms, "stale": sync.stale}
        if not sync.stale:
            metrics.update(book_metrics(sync.book, COST_NOTIONALS))
        return book_json(sync, self.levels), metrics

    def _write(self, out: dict[str, tuple[dict[str, Any], dict[str, Any]]], gaps: list[dict[str, str | int]]) -> None:
        if not out and not gaps:
            return
        fired: list[dict[str, str]] = []
        if self.alerts.has_symbol_rules:
            for symbol, (depth, metrics) in out.items():
                stats = book_stats(json.dumps(metrics))
                if stats and depth["event_time"] is not None:
                    fired += [a.stream_fields() for a in self.alerts.evaluate_symbol(symbol, depth["event_time"],
                                                                                     stats)]
        pipe = self.r.pipeline(transaction=False)
        for fields in fired:
            pipe.xadd(keys.ALERTS_STREAM, fields, maxlen=keys.ALERTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        self.alerts_fired += len(fired)
        for gap in gaps:
            pipe.xadd(keys.GAPS_STREAM, gap, maxlen=keys.GAPS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        for symbol, (depth, metrics) in out.items():
            pipe.set(keys.book_depth_key(symbol), json.dumps(depth, separators=(",", ":")))
            pipe.set(keys.book_metrics_key(symbol), json.dumps(metrics, separators=(",", ":")))
        pipe.execute()
        self.published += len(out)

    def status(self) -> dict[str, Any]:
        """Per symbol: applied, dropped, gaps, resyncs (snapshots taken), stale."""
        return {
            "last_event_ms": self.last_event_ms, "published": self.published, "bad_entries": self.bad_entries,
            "alerts_fired": self.alerts_fired,
            "resyncs": self.resyncs, "snapshots_ignored": self.snapshots_ignored,
            **(self.fetcher.status() if self.fetcher is not None else {}),
            "books": {s: {"applied": b.counts["applied"], "dropped": b.counts["dropped"], "gaps": b.counts["gaps"],
                          "resyncs": b.counts["gaps"], "snapshots": b.counts["snapshots"],
                          "stale_snapshots": b.counts["stale_snapshots"], "stale": b.stale,
                          "last_update_id": b.book.last_update_id, "levels": list(b.book.depth())}
                      for s, b in sorted(self.syncs.items())},
        }


def book_stats(raw: bytes | str | None) -> dict[str, float]:
    """`book:metrics:{SYMBOL}` as symbol statistics for alert rules: its finite numbers prefixed `book_`; nothing
    while the book is stale (a stale book's figures are not the market's)."""
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("stale", True):
        return {}
    return {f"book_{k}": float(v) for k, v in doc.items()
            if k not in ("last_update_id", "event_time") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


class SnapshotFetcher:
    """Fetches REST depth snapshots for the symbols the handler asks for and adds them to stream:depth.

    Through the backfill's weight-aware client (its own instance, with its own share of REST_WEIGHT_LIMIT): a
    spot snapshot of 5,000 levels weighs 250. Requests for a symbol already fetched since it was asked are
    merged. A failed fetch is retried after a pause while the book still needs it (a newer diff asks again)."""

    def __init__(self, settings: Settings, r: redis.Redis, wanted: queue.Queue[str], stop: threading.Event) -> None:
        self.r = r
        self.wanted = wanted
        self.stop = stop
        self.path, self.limit, weight = DEPTH_ENDPOINTS[settings.venue]
        self.client = KlinesClient(settings.rest_url, settings.venue, settings.rest_weight_limit, stop,
                                   backoff_max_s=settings.backoff_max_s)
        self.weight = weight
        self.fetched = 0
        self.failed = 0
        self.last_error = ""

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    symbol = self.wanted.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending = {symbol}
                while True:  # merge what piled up meanwhile: one snapshot per symbol answers them all
                    try:
                        pending.add(self.wanted.get_nowait())
                    except queue.Empty:
                        break
                for sym in sorted(pending):
                    self._fetch(sym)
        except Stopped:
            pass
        finally:
            self.client.close()

    def _fetch(self, symbol: str) -> None:
        try:
            body = self.client.get_json(self.path, {"symbol": symbol, "limit": self.limit}, self.weight)
            recv_ns = time.time_ns()
            snap = snapshot_from_msg(DepthSnapshotMsg.model_validate(body), symbol)
        except Stopped:
            raise
        except (FetchError, ValueError) as exc:  # ValueError: pydantic's ValidationError too
            self.failed += 1
            self.last_error = f"{symbol}: {exc}"[:300]
            log.warning("depth snapshot of %s not fetched: %s", symbol, exc)
            return
        self.r.xadd(keys.DEPTH_STREAM, codec.encode_depth(snap, recv_ns))  # type: ignore[arg-type]
        self.fetched += 1
        log.info("depth snapshot of %s at update id %d added to %s", symbol, snap.last_update_id, keys.DEPTH_STREAM)

    def status(self) -> dict[str, Any]:
        return {"snapshots_fetched": self.fetched, "snapshot_failures": self.failed,
                "snapshot_last_error": self.last_error, "rest_weight_used_1m": self.client.stats.weight_used_1m}


def fetches_snapshots(settings: Settings) -> bool:
    """The live feed needs REST snapshots; a replay's books come from its recordings, unless a REST server is
    named explicitly (BINANCE_REST_URL: tests, a recorded venue)."""
    return settings.source is Source.BINANCE or bool(settings.binance_rest_url)
