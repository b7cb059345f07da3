"""The analytics consumer group: ticks -> aligned pair observations -> metrics on `stream:analytics`.

The math lives in `qs_analytics` (pure, no I/O); this module reads ticks, feeds the as-of aligners and
engines, runs the scheduled ADF, evaluates the alert rules stored in Redis on every update, throttles what
it publishes (at most ANALYTICS_MAX_RATE entries per second of observation time per pair, and always on an
alert), and keeps the latest top of book and per-symbol statistics in Redis.

Which pairs and symbols, and each pair's engine settings and price source (trade or book mid), come from the live
registry (qs_common/control.py, applied by worker/live_pairs.py): checked at most once a second before a batch,
and by a small thread while no batch comes, so a change from the screen reaches the engines within a second. Each
entry carries the settings it was computed with (window, beta_source, price_source, z_entry, z_exit).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from threadpoolctl import threadpool_limits

from qs_analytics.alerts import AlertEvaluator, AlertRule
from qs_analytics.engine import PairConfig
from qs_analytics.symbol import SymbolStats, book_metrics
from qs_common import codec, keys
from qs_common.settings import Settings
from worker import pair_slots, tick_values, webhooks
from worker.analytics_shard import AnalyticsShard
from worker.consumer import AnyEntry, Rejected
from worker.live_pairs import POLL_S, Change, LivePairs
from worker.pair_slots import PairSlot, stream_id
from worker.warmup import adf_fields

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
RULES_REFRESH_S = 1.0
PUBLISH_WITHIN_S = 0.005


def pair_config(settings: Settings) -> PairConfig:
    """The deployment's default engine settings (a pair's own settings: pair_slots.pair_config)."""
    return pair_slots.pair_config(settings)


def _first_id(entries: list[AnyEntry]) -> bytes | None:
    """The batch's smallest entry id (a claimed batch may not be in order)."""
    return min((eid for eid, _ in entries), key=stream_id) if entries else None


def _replayed(slot: PairSlot, trades: codec.TradeColumns, bk: codec.BookColumns, j: int) -> bool:
    """The tick was already replayed into the slot's engine by its warm-up."""
    eid = trades.entry_ids[j] if j >= 0 else bk.entry_ids[~j]
    return slot.skip_until is not None and stream_id(eid) <= slot.skip_until


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _as_dict(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields in order, as `dataclasses.asdict` gives them: asdict deep-copies field by field
    (14 µs for a symbol snapshot, 0.7 µs this way), and a write builds one per symbol and book (issue 12)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    return {name: getattr(obj, name) for name in names}


class AnalyticsHandler:
    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        # One BLAS thread for the process (numpy, scipy and scikit-learn are loaded by now: the limit covers only
        # loaded libraries). The robust refits solve on ~300 points; OpenBLAS's default thread per core spins
        # for work on a busy 2-core machine: a Huber refit cost 25 ms of CPU and 97 ms of wall time, 5 ms and
        # 18 ms with one thread (docs/benchmarks.md, issue 12 analytics).
        threadpool_limits(1, user_api="blas")
        self.r = r
        self.live = LivePairs(settings, r)  # the registry's pairs and symbols, applied before each batch
        # issue 14: a shard (SHARD=k/M) computes only the pairs and symbols it owns; 0/1 owns everything
        self.shard = AnalyticsShard(settings, r)
        self.shard_label = str(self.shard.spec)
        self.live.owns = self.shard.owns_pair
        if settings.partitioned:  # the legs' own streams, up to where the consumer's input of each stands
            self.live.warm = self.shard.warm
        self._streams: list[str] = []  # partitioned mode: the tick streams this shard reads
        self.symbol_window = settings.symbol_window
        self.symbol_stats: dict[str, SymbolStats] = {}  # the active symbols, from the registry
        self.snapshots: dict[str, Any] = {}  # changed since the last write
        self.min_gap_ms = 1000.0 / settings.analytics_max_rate
        self.maxlen = settings.analytics_maxlen
        self.alerts = AlertEvaluator()
        self.last_published_ms: dict[str, float] = {}
        self.observations = 0
        self.published = 0
        self.alerts_fired = 0
        self.bad_rules = 0
        self.errors = 0
        self.last_event_ms: int | None = None
        self._rules_loaded = 0.0
        self.garch: dict[str, dict[str, Any]] = {}  # symbol -> garch_* fields (issue 9), refreshed with the rules
        self._last_snap: dict[str, Any] = {}
        self._symbol_fired: list[dict[str, str]] = []  # symbol-rule alerts waiting for the next write
        # what this consumer writes to stream:alerts is delivered to the rules' webhooks by threads of their own,
        # which read that stream (never this loop); they also seed the default rule once per Redis (issue 10)
        self.webhooks = webhooks.start(settings, r)
        # one batch or one registry change at a time: the idle thread applies changes while no batch comes
        self._lock = threading.Lock()
        self._last_call = time.monotonic()
        self._fed = False  # a batch was handled: from then on, an idle consumer means every entry was fed
        self._ticks_stream = None if settings.partitioned else settings.ticks_stream
        self._closed = threading.Event()
        threading.Thread(target=self._idle_loop, name="analytics-registry", daemon=True).start()

    def status(self) -> dict[str, Any]:
        """Counters for the consumer's status record (`status:worker-analytics`)."""
        return {"last_event_ms": self.last_event_ms, "observations": self.observations, "published": self.published,
                "alerts_fired": self.alerts_fired, "bad_rules": self.bad_rules, "errors": self.errors,
                # the registry version the engines follow (control:version), and how many pairs they compute
                "registry_version": self.live.watcher.seen, "pairs": len(self.live.slots), "shard": self.shard_label}

    def streams(self) -> list[str]:
        """Partitioned mode: the tick streams of the owned pairs' legs and owned symbols (the consumer's set)."""
        return self._streams

    def _refresh_rules(self) -> None:
        if time.monotonic() - self._rules_loaded < RULES_REFRESH_S:
            return
        self._rules_loaded = time.monotonic()
        rules = []
        bad = 0
        for rule_id, raw in self.r.hgetall(keys.ALERT_RULES).items():
            try:
                rules.append(AlertRule.from_json(raw))
            except ValueError as exc:
                bad += 1
                if bad == 1 and self.bad_rules == 0:
                    log.warning("ignoring invalid alert rule %r: %s", rule_id, exc)
        self.bad_rules = bad
        self.alerts.set_rules(rules)
        self._refresh_garch()

    def _refresh_garch(self) -> None:
        """The research thread's newest GARCH fit per symbol (`symbol:garch:*`), joined into symbol:stats."""
        raws = self.r.mget([keys.garch_key(s) for s in self.symbol_stats])
        for sym, raw in zip(self.symbol_stats, raws, strict=True):  # type: ignore[arg-type]
            try:
                fit = json.loads(raw) if raw else {}
            except ValueError:
                fit = {}
            if isinstance(fit, dict) and fit != self.garch.get(sym, {}):
                self.garch[sym] = fit
                if sym in self.symbol_stats and sym not in self.snapshots and sym in self._last_snap:
                    self.snapshots[sym] = self._last_snap[sym]  # publish the new fit without waiting for a trade

    def _trade(self, t: codec.TradeColumns, i: int) -> tuple[str, int, float, int]:
        """The trade's (symbol, time, price, recv) for the aligners; ValueError naming what it cannot use."""
        sym, ts, price, qty = tick_values.trade(t, i)
        stats = self.symbol_stats.get(sym)
        if stats is not None:
            if not self.alerts.has_symbol_rules:  # only the newest snapshot is written: built once, in _write
                stats.push(ts, price, qty)
                self.snapshots[sym] = stats
            else:  # a snapshot and its dict per trade only when some rule watches symbol stats
                snap = self.snapshots[sym] = stats.update(ts, price, qty)
                metrics = {**_finite(_as_dict(snap)), **_finite(self.garch.get(sym, {}))}
                self._symbol_fired.extend(a.stream_fields() for a in self.alerts.evaluate_symbol(sym, ts, metrics))
        return sym, ts, price, t.recvs[i]

    @staticmethod
    def _book_tick(b: codec.BookColumns, i: int, books: dict[str, int]) -> tuple[str, int, float, int]:
        """The book update's (symbol, time, mid, recv) for the pairs priced at the mid; ValueError naming what it
        cannot use."""
        sym, ts, mid = tick_values.book_mid(b, i)
        books[sym] = i  # only the newest per batch is written: its metrics are computed then
        return sym, ts, mid, b.recvs[i]

    @staticmethod
    def _book(b: codec.BookColumns, i: int) -> dict[str, Any]:
        bid, bq, ask, aq, recv_ns, ts = b.bids[i], b.bid_qtys[i], b.asks[i], b.ask_qtys[i], b.recvs[i], b.times[i]
        return {
            "symbol": b.symbols[i], "bid": bid, "bid_qty": bq, "ask": ask, "ask_qty": aq, "update_id": b.ids[i],
            "recv_ns": recv_ns, "ts": ts if ts is not None else recv_ns // 1_000_000,
            **_finite(_as_dict(book_metrics(bid, bq, ask, aq))),
        }

    def __call__(self, entries: list[AnyEntry]) -> list[Rejected]:
        """Feed the batch to the engines and publish; return the entries it cannot use (they are quarantined).
        Fields as dicts or as the flat lists of raw replies (the consumer's `flat_fields`): the codec reads both.

        Never raises on data: the engines' state is in memory, so a retried batch would count twice."""
        with self._lock:
            self._last_call = time.monotonic()
            rejected = self._batch(entries)
            self._fed = True
            return rejected

    def _batch(self, entries: list[AnyEntry]) -> list[Rejected]:
        self._refresh_rules()
        first = _first_id(entries)
        out = self._control(lambda: first)  # a registry change first: its warm-up stops before this batch
        if self.live.skipping and first is not None:
            self.live.settle(stream_id(first))
        batch = codec.decode_batch(entries, order=True, times=True)
        rejected: list[Rejected] = batch.undecodable
        trades, bk = batch.trades, batch.books
        trade_routes, mid_routes = self.live.trade_routes, self.live.mid_routes
        books: dict[str, int] = {}  # symbol -> its newest book update in `bk`
        fired_out: list[dict[str, str]] = []
        started = time.monotonic()
        for j in batch.order:
            if out and time.monotonic() - started > PUBLISH_WITHIN_S:
                # a long batch (a backlog, a scheduled refit) must not hold back what is ready
                self._write(out, fired_out, bk, books)
                out, fired_out, books = [], [], {}
                started = time.monotonic()
            try:
                if j >= 0:
                    sym, ts, price, recv_ns = self._trade(trades, j)
                    slots = trade_routes.get(sym)
                else:
                    sym, ts, price, recv_ns = self._book_tick(bk, ~j, books)
                    slots = mid_routes.get(sym)
            except ValueError as exc:
                rejected.append((trades.entry_ids[j] if j >= 0 else bk.entry_ids[~j], str(exc)))
                continue
            self.last_event_ms = ts
            for slot in slots or ():  # only the pairs this symbol is a leg of, priced by this kind of tick
                if slot.skip_until is None or not _replayed(slot, trades, bk, j):
                    if out and slot.engine.slow_step_due(ts):  # a refit or ADF takes ms: publish what is ready
                        self._write(out, fired_out, bk, books)
                        out, fired_out, books = [], [], {}
                        started = time.monotonic()
                    self._observe(slot, sym, ts, price, recv_ns, out, fired_out)
        self._write(out, fired_out, bk, books)
        return rejected

    def _observe(self, slot: PairSlot, sym: str, ts: int, price: float, recv_ns: int, out: list[dict[str, str]],
                 fired_out: list[dict[str, str]]) -> None:
        obs = slot.aligner.update(sym, ts, price)
        if obs is None:
            return
        engine = slot.engine
        try:
            metrics = engine.update(obs.ts_ms, obs.y, obs.x)
            if engine.adf_due(obs.ts_ms):
                engine.run_adf(obs.ts_ms)
                metrics = {**metrics, **adf_fields(engine)}
        except Exception:  # in-memory state: a retried batch would count twice, so never raise
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.exception("analytics update failed (%d so far)", self.errors)
            return
        self.observations += 1
        pair = slot.pair
        fired = self.alerts.evaluate(pair, obs.ts_ms, metrics)
        fired_out.extend(a.stream_fields() for a in fired)
        if fired or obs.ts_ms - self.last_published_ms.get(pair, -math.inf) >= self.min_gap_ms:
            self.last_published_ms[pair] = obs.ts_ms
            out.append(self._entry(slot, obs.ts_ms, recv_ns, obs.y, obs.x, metrics))

    def _control(self, before: Callable[[], bytes | None]) -> list[dict[str, str]]:
        """Apply a registry change (at most once a second); the entries of the newly warmed engines."""
        change = self.live.poll(before)
        return [] if change is None else self._changed(change)

    def _changed(self, change: Change) -> list[dict[str, str]]:
        for sym in change.symbols_added:
            if self.shard.owns_symbol(sym):  # one shard keeps each symbol's statistics
                self.symbol_stats[sym] = SymbolStats(self.symbol_window)
        for sym in change.symbols_removed:  # its stats stop; the stored candles stay
            for table in (self.symbol_stats, self.snapshots, self._last_snap, self.garch):
                table.pop(sym, None)
        if change.symbols_removed:
            self.r.delete(*(keys.symbol_stats_key(s) for s in change.symbols_removed))
        for pid in change.removed_pairs:
            self.last_published_ms.pop(pid, None)
        self._streams = self.shard.streams(self.live.slots.values(), self.live.symbols)
        out = []
        for pid, warmed in change.warmed.items():  # one entry for the newest state; nothing for the past
            self.observations += warmed.observations
            self.last_published_ms.pop(pid, None)
            if warmed.last is not None:
                obs, recv_ns, metrics = warmed.last
                self.last_published_ms[pid] = obs.ts_ms
                out.append(self._entry(self.live.slots[pid], obs.ts_ms, recv_ns, obs.y, obs.x, metrics))
        return out

    def _idle_loop(self) -> None:
        """While no batch comes (an idle stream), registry changes still reach the engines within a second."""
        while not self._closed.wait(POLL_S / 2):
            if time.monotonic() - self._last_call < POLL_S or not (self._fed or self._caught_up()):
                continue
            if not self._lock.acquire(blocking=False):
                continue
            try:
                out = self._control(lambda: None)  # every entry was fed: warm up to the newest
                if out:
                    self._write(out, [], codec.BookColumns(), {})
            except Exception as exc:  # Redis down: the consumer reports it; the change is applied once it is back
                log.debug("registry poll while idle failed: %s", exc)
            finally:
                self._lock.release()

    def _caught_up(self) -> bool:
        """Before the first batch: whether the group has nothing undelivered or pending (a warm-up up to the newest
        entry then skips nothing the consumer still has to feed; with a backlog, the first batch warms instead)."""
        if self._ticks_stream is None:  # partitioned: the shard's warm-up stops at the consumer's position itself
            return True
        try:
            groups: Any = self.r.xinfo_groups(self._ticks_stream)
        except (redis.RedisError, OSError):
            return False
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == keys.ANALYTICS_GROUP:
                return g.get("lag") == 0 and g.get("pending") == 0
        return False

    def close(self) -> None:
        self._closed.set()

    def _write(
        self, out: list[dict[str, str]], fired: list[dict[str, str]], bk: codec.BookColumns, books: dict[str, int]
    ) -> None:
        fired = [*fired, *self._symbol_fired]
        pipe = self.r.pipeline(transaction=False)
        for fields in out:
            pipe.xadd(keys.ANALYTICS_STREAM, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        for fields in fired:
            pipe.xadd(keys.ALERTS_STREAM, fields, maxlen=keys.ALERTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        for sym, i in books.items():
            if self.shard.owns_symbol(sym):
                pipe.set(keys.latest_book_key(sym), json.dumps(self._book(bk, i)))
        for sym, snap in self.snapshots.items():
            if isinstance(snap, SymbolStats):  # pushed without a snapshot (no symbol rules)
                snap = snap.snapshot()
            self._last_snap[sym] = snap
            stats = {"symbol": sym, **_finite(_as_dict(snap)), **self.garch.get(sym, {})}
            pipe.set(keys.symbol_stats_key(sym), json.dumps(stats))
        self.snapshots = {}
        pipe.execute()
        self._symbol_fired = []  # only once written: a failed write keeps them for the retried batch
        self.published += len(out)
        if fired:
            self.alerts_fired += len(fired)
            log.info("%d alert(s) fired", len(fired))

    def _entry(self, slot: PairSlot, ts: int, recv_ns: int, y: float, x: float,
               metrics: dict[str, float]) -> dict[str, str]:
        fields = {"v": SCHEMA_VERSION, "pair": slot.pair, "ts": str(ts), "recv_ns": str(recv_ns), "y": repr(y),
                  "x": repr(x), "shard": self.shard_label, **slot.labels}
        for name, value in metrics.items():
            if value == value and not math.isinf(value):
                fields[name] = repr(float(value))
        res = slot.engine.last_adf
        if res is not None:
            fields["adf_verdict"] = res.verdict
        return fields
