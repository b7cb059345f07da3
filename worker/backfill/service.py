"""The backfill thread: start-up backfill, gap repair and hole repair from REST klines, with status.

"Now" is the newest exchange event time seen (stored trades, the tail of the tick stream, gap records),
never the wall clock: a replay of 2024 frames has its own "now", and the look-back follows it. A candle
is closed, and may come from REST, once its close time is before "now".

- Start-up: for each active symbol and stored interval, from the last stored candle (read before the candle
  consumer starts; fetched again because it may be partial) up to "now", bounded by the look-back.
- Gaps: each `stream:gaps` record gives jobs for the candles around and inside the gap at every interval;
  the record is acknowledged once every closed candle of them is stored (the rest stays a durable job).
- Holes: every few seconds the 1m history in the look-back window is scanned; a missing run of minutes,
  e.g. where live data resumed after a stop, gives jobs for its time span at every interval.
- Symbols added at runtime (the live registry, qs_common/control.py, watched once a second): each gets the
  start-up backfill (`BACKFILL_LOOKBACK_H`, from its last stored candle if it had been watched before); holes
  and the kline check follow the active set. A removed symbol keeps its history (nothing is deleted).
- The kline check (`kline_check`, setting `KLINE_CHECK`): every closed live 1m candle compared with its
  kline and repaired from it; its follow-up jobs (origin `kline-check`) repair the 1s and 5m candles of a
  repaired minute. It runs in this thread, sharing the client and its budget, also when `BACKFILL_ENABLED`
  is off (then this thread runs only the check and its follow-ups).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from qs_common import codec, control, keys
from qs_common.partition import ShardSpec
from qs_common.settings import Settings
from qs_common.venues.binance.config import KLINES_PAGE_LIMIT
from qs_common.venues.binance.klines import VENUE_INTERVALS, KlineError
from worker.backfill import plan
from worker.backfill.client import FetchError, KlinesClient, RejectedRequest, Stopped
from worker.backfill.gaps import Gap, GapReader
from worker.backfill.kline_check import CHECK_EVERY_S, KlineCheck
from worker.backfill.klines import klines_frame
from worker.backfill.plan import HOLE_INTERVAL, Job
from worker.backfill.storage import RestCandleStore, WriteResult
from worker.candles import STORED_INTERVALS
from worker.store import CandleStore

log = logging.getLogger(__name__)

SCAN_EVERY_S = 2.0
RETRY_FAILED_JOB_S = 30.0
_ORIGIN_ORDER = {"startup": 0, "gap": 1, "kline-check": 2, "hole": 3}
CHECK_ORIGIN = "kline-check"


class BackfillService:
    def __init__(self, settings: Settings, store: CandleStore, r: redis.Redis, consumer: str,
                 client: KlinesClient | None = None) -> None:
        self.settings = settings
        self.r = r
        self.shared_client = client  # the worker's REST client (shared with the API's symbol check), or our own
        self.registry = control.Watcher(r)
        # issue 14: a candle shard (SHARD=k/N) backfills and checks only the symbols it owns, and reads every gap
        # record with a gap group of its own (a shared group would hand each gap to one shard only)
        spec = ShardSpec.parse(settings.shard)
        self.owns = spec.owns
        self.symbols: tuple[str, ...] = tuple(filter(self.owns, settings.symbols))  # once the registry was read
        self.rest = RestCandleStore(store)
        self.gap_reader = GapReader(r, consumer, group=keys.GAPS_GROUP if spec.whole else
                                    f"{keys.GAPS_GROUP}-{keys.shard_label(spec.index, spec.count)}")
        self.lookback_ms = int(settings.backfill_lookback_h * 3_600_000)
        self.intervals = [i for i in STORED_INTERVALS if i in VENUE_INTERVALS[settings.venue]]
        # Read before the candle consumer starts: what the last run left is what start-up must extend.
        self.startup_last = self.rest.last_open_times()
        self.now_ms = self.rest.newest_trade_ms()
        self.backfill_on = settings.backfill_enabled
        self.check_on = settings.kline_check_on
        # without backfill only the kline check's own follow-up jobs are resumed
        self.jobs: list[Job] = [j for j in self.rest.load_jobs() if self.backfill_on or j.origin == CHECK_ORIGIN]
        self.gaps: dict[str, tuple[Gap, list[Job]]] = {}
        self.planned = False
        self.seen_holes: set[tuple[str, int, int]] = set()
        self.retry_at: dict[tuple[str, str, int, int], float] = {}
        self.client: KlinesClient | None = None
        self.state = "starting"
        self.done: list[str] = []
        self.fetched = 0
        self.totals = WriteResult()
        self.gaps_filled = 0
        self.holes_found = 0
        self.last_error: str | None = None
        self._last_scan = 0.0
        self.scans = 0
        self.check = KlineCheck(settings, self.rest, self.intervals, self.lookback_ms)
        self.check.symbols = self.symbols
        self._last_check = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        s = self.settings
        self.client = self.shared_client or KlinesClient(s.rest_url, s.venue, s.rest_weight_limit, stop)
        log.info("backfill %s from %s (%s), look-back %g h, intervals %s; kline check %s",
                 "on" if self.backfill_on else "off", s.rest_url, s.venue.value, s.backfill_lookback_h,
                 ",".join(self.intervals),
                 f"on, {s.kline_check_delay_s:g} s after close" if self.check_on else "off")
        try:
            while not stop.is_set():
                try:
                    busy = self._tick()
                except Stopped:
                    break
                except (redis.RedisError, OSError) as exc:
                    self._error(f"redis: {exc}")
                    self._set_state("redis-down")
                    busy = False
                if not busy:
                    stop.wait(0.5)
        finally:
            client, self.client = self.client, None
            if client is not self.shared_client:
                client.close()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info("backfill %s (jobs pending %d, candles fetched %d)", state, len(self.jobs), self.fetched)
            self.state = state

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("backfill: %s", message)
        self.last_error = message

    # -- one pass --------------------------------------------------------------------------------------
    def _tick(self) -> bool:
        """Update "now", plan, fetch one page; True when there is more to fetch right away."""
        self._update_now()
        if self.now_ms is None:
            self._set_state("waiting-for-data")
            return False
        self._follow_registry(self.now_ms)
        if self.backfill_on:
            if not self.planned:
                self._plan_startup(self.now_ms)
            for gap in self.gap_reader.read():
                self._add_gap(gap, self.now_ms)
            if time.monotonic() - self._last_scan > SCAN_EVERY_S:
                self._last_scan = time.monotonic()
                self._scan_holes(self.now_ms)
                self.scans += 1
        for followup in self.check.take_followups():
            self._add_job(followup)
        job = self._next_due(self.now_ms)
        if job is not None:
            self._set_state("backfilling" if job.origin == "startup" else "repairing")
            self._fetch_page(job, self.now_ms)
        self._ack_gaps(self.now_ms)
        checked = False
        if self.check_on and self.client is not None and time.monotonic() - self._last_check > CHECK_EVERY_S:
            # not a state of its own: a round a minute would log two lines a minute; the counters show it
            checked = self.check.step(self.client)
            # a round that made a request may have more due: look again at once
            self._last_check = 0.0 if checked else time.monotonic()
        if job is None and not checked:
            self._set_state("waiting-for-close" if self.jobs else "idle")
        return job is not None or checked

    def _update_now(self) -> None:
        newest = self.now_ms or 0
        tail: Any = self.r.xrevrange(self.settings.ticks_stream, "+", "-", count=200)
        times = codec.decode_batch(tail, books=False).trades.times  # undecodable entries are the consumers' to report
        if times:
            newest = max(newest, *times)
        if newest:
            self.now_ms = newest

    def _add_job(self, job: Job) -> None:
        if job.end_ms > job.start_ms and self.rest.save_job(job):
            self.jobs.append(job)

    def _follow_registry(self, now_ms: int) -> None:
        """Adopt the registry's active set; a symbol new to it gets the start-up backfill (after start-up)."""
        seen = self.registry.poll()
        if seen is None:
            return
        active = tuple(filter(self.owns, seen[0]))
        added = [s for s in active if s not in self.symbols]
        self.symbols = active
        self.check.symbols = active
        if not (self.planned and added and self.backfill_on):
            return  # before start-up planning every active symbol is planned there
        last = self.rest.last_open_times()  # a symbol watched before resumes from its last stored candle
        for symbol in added:
            log.info("symbol %s added: backfilling %g h of %s", symbol, self.settings.backfill_lookback_h,
                     ",".join(self.intervals))
            for interval in self.intervals:
                self._add_job(plan.startup_job(symbol, interval, last.get((symbol, interval)), now_ms,
                                               self.lookback_ms))

    def _plan_startup(self, now_ms: int) -> None:
        # the active symbols only: a symbol removed from the registry keeps its history but is not extended
        for symbol in self.symbols:
            for interval in self.intervals:
                self._add_job(plan.startup_job(symbol, interval, self.startup_last.get((symbol, interval)),
                                               now_ms, self.lookback_ms))
        self.planned = True

    def _add_gap(self, gap: Gap, now_ms: int) -> None:
        if gap.entry_id in self.gaps:
            return
        if gap.venue and gap.venue != self.settings.venue.value:
            log.warning("gap %s is from venue %s, not %s: skipped", gap.entry_id, gap.venue,
                        self.settings.venue.value)
            self.gap_reader.ack(gap.entry_id)
            return
        span = plan.clip_to_lookback(gap.start_ms, gap.end_ms, now_ms, self.lookback_ms)
        jobs: list[Job] = []
        for symbol in filter(self.owns, gap.symbols):
            for job in plan.span_jobs(symbol, *span, "gap", self.intervals) if span else []:
                self._add_job(job)
                jobs.extend(j for j in self.jobs if j.key == job.key)
        log.info("gap %s..%s ms for %s (%s): %d jobs", gap.start_ms, gap.end_ms, ",".join(gap.symbols),
                 gap.reason, len(jobs))
        self.gaps[gap.entry_id] = (gap, jobs)

    def _scan_holes(self, now_ms: int) -> None:
        ms = STORED_INTERVALS[HOLE_INTERVAL]
        for symbol in self.symbols:
            opens = self.rest.open_times(symbol, HOLE_INTERVAL, now_ms - self.lookback_ms)
            for before, after in plan.hole_spans(opens, ms):
                key = (symbol, before, after)
                if key in self.seen_holes or plan.covered(self.jobs, symbol, HOLE_INTERVAL, before + ms, after):
                    continue
                self.seen_holes.add(key)
                self.holes_found += 1
                log.info("hole in %s 1m history: %d..%d ms", symbol, before + ms, after)
                for job in plan.span_jobs(symbol, before, after + ms - 1, "hole", self.intervals):
                    self._add_job(job)

    def _next_due(self, now_ms: int) -> Job | None:
        t = time.monotonic()
        due = [j for j in self.jobs if plan.due_range(j, now_ms) and self.retry_at.get(j.key, 0) <= t]
        return min(due, key=lambda j: (_ORIGIN_ORDER.get(j.origin, 9), j.start_ms), default=None)

    # -- fetching --------------------------------------------------------------------------------------
    def _fetch_page(self, job: Job, now_ms: int) -> None:
        assert self.client is not None
        first, last = plan.due_range(job, now_ms) or (job.cursor_ms, job.cursor_ms)
        ms = STORED_INTERVALS[job.interval]
        try:
            rows = self.client.fetch(job.symbol, job.interval, first, last)
            frame = klines_frame(job.symbol, job.interval, ms, rows)
        except RejectedRequest as exc:
            self._error(str(exc))
            self._finish(job, f"rejected: {exc}")
            return
        except (FetchError, KlineError) as exc:
            self._error(str(exc))
            self.retry_at[job.key] = time.monotonic() + RETRY_FAILED_JOB_S
            return
        self.fetched += len(frame)
        # Only closed candles inside the asked range, whatever the server sent.
        closed = frame.filter((frame["open_time"] >= first) & (frame["open_time"] <= last)
                              & (frame["close_time"] < now_ms))
        repair = job.origin == CHECK_ORIGIN  # the kline is the authority for a minute the check repaired
        result = self.rest.write(closed, now_ms, reason=job.origin, repair=repair)
        if repair:
            self.check.count_followup(result)
        else:
            self.totals.add(result)
        full_page = len(rows) >= KLINES_PAGE_LIMIT
        job.cursor_ms = int(frame["open_time"][-1]) + ms if full_page and len(frame) else last + ms
        self.rest.update_job(job)
        if job.done:
            self._finish(job, "")

    def _finish(self, job: Job, why: str) -> None:
        job.cursor_ms = job.end_ms
        self.rest.update_job(job)
        self.jobs = [j for j in self.jobs if j is not job]
        label = f"{job.symbol}/{job.interval}"
        if job.origin == "startup" and label not in self.done:
            self.done.append(label)
        log.debug("job %s %s %d..%d done %s", job.origin, label, job.start_ms, job.end_ms, why)

    def _ack_gaps(self, now_ms: int) -> None:
        for entry_id, (_, jobs) in list(self.gaps.items()):
            if all(j.done or plan.due_range(j, now_ms) is None for j in jobs):
                self.gap_reader.ack(entry_id)
                del self.gaps[entry_id]
                self.gaps_filled += 1

    # -- status ----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        c = self.client.stats if self.client else None
        return {
            "state": self.state, "venue": self.settings.venue.value, "rest_url": self.settings.rest_url,
            "now_ms": self.now_ms, "lookback_h": self.settings.backfill_lookback_h,
            "symbols": list(self.symbols), "intervals": self.intervals, "done": list(self.done),
            "jobs_pending": len(self.jobs), "candles_fetched": self.fetched,
            "candles_stored": self.totals.inserted + self.totals.replaced, "replaced": self.totals.replaced,
            "agreed": self.totals.agreed, "mismatches": self.totals.differed,
            "requests": c.requests if c else 0, "weight_spent": c.weight_spent if c else 0,
            "weight_used_1m": c.weight_used_1m if c else 0, "weight_limit": self.settings.rest_weight_limit,
            "retries": c.retries if c else 0, "rate_limited": c.rate_limited if c else 0,
            "last_error": self.last_error, "gaps_pending": len(self.gaps), "gaps_filled": self.gaps_filled,
            "holes_found": self.holes_found, "scans": self.scans,
            "backfill": self.backfill_on, "kline_check": self.check_on, **self.check.status(),
        }

    # -- on demand -------------------------------------------------------------------------------------
    def verify(self, symbol: str, start_ms: int, end_ms: int) -> dict[str, Any]:
        """The kline check over [start_ms, end_ms] now (any range, closed minutes), repairing what differs.

        Called from the API's thread; the client serialises requests, the store its writes.
        """
        return self.check.verify(self.client, symbol, start_ms, end_ms, self.now_ms)
