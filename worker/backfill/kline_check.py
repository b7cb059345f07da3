"""The kline check: every closed live 1m candle compared with Binance's own kline, and repaired from it.

Why: a Redis that loses its last second of writes (an OS crash under `appendfsync everysec`) drops ticks
the feed delivered, so no gap is seen and no minute goes missing, yet a candle lacks trades. Only Binance's
kline tells. A minute is checked once it closed `kline_check_delay_s` ago in event time (the symbol's
newest stored trade, so a replay has its own clock and a lagging consumer is waited for); one klines
request covers up to 1,000 minutes, so a round costs one request per symbol. The comparison is the
backfill's reconciliation (`RestCandleStore.write`) in repair mode: a live candle that differs in any field
is replaced by the kline, recorded in `candle_sources` with reason `kline-check` (`verify` on demand) and
the fields that differed. A minute with no candle at all is a hole, left to the backfill's hole scan
(which also repairs the partial minutes beside it). The 1s and 5m candles of a repaired
minute are then fetched and repaired by backfill jobs of origin `kline-check` (persisted, so a 5m candle
still forming is repaired once it closes, even across a restart).

Candles from REST or imports are not checked. Progress (the newest checked minute per symbol) lives in the
DuckDB file with the candles, so a restart neither re-checks everything nor skips a minute. Requests go
through the backfill's client (its total budget, `rest_weight_limit`) and the check spends at most
`kline_check_weight` of it per minute.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import polars as pl

from qs_common.settings import Settings
from qs_common.venues.binance.config import KLINES_PAGE_LIMIT
from qs_common.venues.binance.klines import KlineError
from worker.backfill import plan
from worker.backfill.client import FetchError, KlinesClient, RejectedRequest
from worker.backfill.klines import klines_frame
from worker.backfill.plan import Job
from worker.backfill.storage import RestCandleStore, WriteResult

log = logging.getLogger(__name__)

INTERVAL = "1m"
MINUTE = 60_000
CHECK_EVERY_S = 1.0  # how often the backfill thread looks for due minutes
RETRY_S = 30.0
REJECTED_RETRY_S = 600.0  # the venue refused the symbol: ask again rarely, it may be listed later
MAX_VERIFY_MINUTES = 31 * 1440  # 45 requests at most for one on-demand check
DETAILS_MAX = 1_000


class VerifyError(ValueError):
    """An on-demand check asked wrongly (bad range, a symbol the venue refuses): the caller's mistake."""


class CheckUnavailable(RuntimeError):
    """The on-demand check cannot run now (the backfill thread has no client or no data yet)."""


@dataclass
class CheckStats:
    checked: int = 0  # live 1m candles compared with their kline
    mismatches: int = 0  # of those, how many differed from it
    repaired: int = 0  # 1m candles replaced by their kline
    unverified: int = 0  # live candles the venue had no kline for
    followups_repaired: int = 0  # 1s and 5m candles of repaired minutes replaced or inserted
    requests: int = 0
    pending: int = 0  # closed live minutes not yet checked (including those still within the delay)


class KlineCheck:
    def __init__(self, settings: Settings, rest: RestCandleStore, intervals: list[str], lookback_ms: int) -> None:
        self.symbols = settings.symbols
        self.rest = rest
        self.delay_ms = int(settings.kline_check_delay_s * 1000)
        self.weight_limit = settings.kline_check_weight
        self.lookback_ms = lookback_ms
        self.followup_intervals = [i for i in intervals if i != INTERVAL]
        self.progress = rest.check_progress()
        self.stats = CheckStats()
        self.last_mismatch: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.retry_at: dict[str, float] = {}
        self._lock = threading.Lock()  # counters and follow-ups: the backfill thread and the API's verify
        self._followups: list[Job] = []
        self._newest: dict[str, int] = {}  # each symbol's newest stored trade time: its clock
        self._minute = -1
        self._spent = 0

    # -- the budget: the check's share of the REST weight, per calendar minute as Binance counts ------------
    def _budget(self, weight: int) -> bool:
        with self._lock:
            minute = int(time.time() // 60)
            if minute != self._minute:
                self._minute, self._spent = minute, 0
            if self._spent + weight > self.weight_limit:
                return False
            self._spent += weight
            return True

    # -- the scheduled check --------------------------------------------------------------------------------
    def _start(self, symbol: str, now_ms: int) -> int | None:
        """First minute still to check: after the progress, or the first live minute in the look-back."""
        done = self.progress.get(symbol)
        if done is not None:
            return done + MINUTE
        return self.rest.first_live_open(symbol, INTERVAL, now_ms - self.lookback_ms)

    def _advance(self, symbol: str, through_ms: int) -> None:
        self.rest.save_check_progress(symbol, through_ms)
        with self._lock:
            self.progress[symbol] = max(through_ms, self.progress.get(symbol, through_ms))

    def step(self, client: KlinesClient) -> bool:
        """At most one klines request for the symbol whose due minutes wait longest; True when one was made."""
        # only trades newer than the oldest known "now" can move it (new ones come in time order)
        floor = min(self._newest.values()) if self._newest else None
        for symbol, t in self.rest.newest_trade_by_symbol(floor).items():
            self._newest[symbol] = max(t, self._newest.get(symbol, t))
        newest = self._newest
        due: list[tuple[int, str, int, int]] = []
        pending = 0
        for symbol in self.symbols:
            now = newest.get(symbol)
            start = self._start(symbol, now) if now is not None else None
            if now is None or start is None:
                continue
            pending += max(0, (plan.last_closed_open(now, MINUTE) - start) // MINUTE + 1)
            last_due = plan.align_down(now - MINUTE - self.delay_ms, MINUTE)
            if start <= last_due and self.retry_at.get(symbol, 0.0) <= time.monotonic():
                due.append((start, symbol, min(last_due, start + (KLINES_PAGE_LIMIT - 1) * MINUTE), now))
        self.stats.pending = pending
        for first, symbol, last, now in sorted(due):
            if self.rest.live_count(symbol, INTERVAL, first, last) == 0:
                self._advance(symbol, last)  # nothing live there: it came from REST or nothing was traded
                continue
            if not self._budget(client.weight):
                return False  # the check's share of this minute is spent; the next round covers more minutes
            try:
                result, _ = self._check_range(client, symbol, first, last, now, "kline-check")
            except RejectedRequest as exc:
                self._failed(symbol, str(exc), REJECTED_RETRY_S)
                return True
            except (FetchError, KlineError) as exc:
                self._failed(symbol, str(exc), RETRY_S)
                return True
            self._advance(symbol, last)
            if result.changes:
                self._log_round(symbol, first, last, result)
            return True
        return False

    def _failed(self, symbol: str, message: str, retry_s: float) -> None:
        if message != self.last_error:
            log.warning("kline check %s: %s", symbol, message)
        self.last_error = message
        self.retry_at[symbol] = time.monotonic() + retry_s

    def _log_round(self, symbol: str, first: int, last: int, result: WriteResult) -> None:
        shown = "; ".join(f"{c['open_time']}: {c['differed']}" for c in result.changes[:5])
        log.warning("kline check %s %d..%d: %d minute(s) differed from Binance's klines, repaired (%s%s)",
                    symbol, first, last, len(result.changes), shown, "; ..." if len(result.changes) > 5 else "")

    # -- one range, scheduled or on demand ----------------------------------------------------------------
    def _check_range(self, client: KlinesClient, symbol: str, first: int, last: int, now_ms: int,
                     reason: str) -> tuple[WriteResult, int]:
        """Compare and repair the 1m candles with open time in [first, last] (at most one page).

        Returns the write result and how many live candles had no kline to compare with.
        """
        live = self.rest.live_count(symbol, INTERVAL, first, last)
        rows = client.fetch(symbol, INTERVAL, first, last)
        frame = klines_frame(symbol, INTERVAL, MINUTE, rows)
        # only closed minutes inside the asked range, whatever the server sent
        frame = frame.filter(pl.col("open_time").is_between(first, last) & (pl.col("close_time") < now_ms))
        result = self.rest.write(frame, now_ms, reason=reason, repair=True, insert=False)
        unverified = max(0, live - result.agreed - result.replaced)
        with self._lock:
            s = self.stats
            s.requests += 1
            s.checked += result.agreed + result.replaced
            s.mismatches += result.replaced
            s.repaired += result.replaced
            s.unverified += unverified
            for change in result.changes:
                self.last_mismatch = {"symbol": symbol, **{k: change[k] for k in (
                    "open_time", "differed", "live_trades", "rest_trades", "outcome", "reason")}}
                t = int(change["open_time"])
                self._followups.extend(plan.span_jobs(symbol, t, t + MINUTE - 1, "kline-check",
                                                      self.followup_intervals))
        return result, unverified

    def take_followups(self) -> list[Job]:
        """Jobs that repair the 1s and 5m candles of the minutes just repaired (run by the backfill thread)."""
        with self._lock:
            jobs, self._followups = self._followups, []
        return jobs

    def count_followup(self, result: WriteResult) -> None:
        with self._lock:
            self.stats.followups_repaired += result.replaced + result.inserted

    def verify(self, client: KlinesClient | None, symbol: str, start_ms: int, end_ms: int,
               now_ms: int | None) -> dict[str, Any]:
        """The same check on demand over [start_ms, end_ms] (open times, inclusive): closed minutes only.

        Raises `VerifyError` for a bad request, `CheckUnavailable` or `FetchError` (both RuntimeError) when
        it cannot run now.
        """
        if client is None or now_ms is None:
            raise CheckUnavailable("the kline check is not running yet (no REST client or no data yet)")
        first = plan.align_up(start_ms, MINUTE)
        last = min(plan.align_down(end_ms, MINUTE), plan.last_closed_open(now_ms, MINUTE))
        if end_ms < start_ms:
            raise VerifyError("end: before start")
        if (last - first) // MINUTE + 1 > MAX_VERIFY_MINUTES:
            raise VerifyError(f"range: at most {MAX_VERIFY_MINUTES} minutes at a time")
        out: dict[str, Any] = {"symbol": symbol, "start": first, "end": last, "checked": 0, "mismatches": 0,
                               "repaired": 0, "unverified": 0, "details": []}
        for page in range(first, last + 1, KLINES_PAGE_LIMIT * MINUTE):
            page_last = min(last, page + (KLINES_PAGE_LIMIT - 1) * MINUTE)
            if self.rest.live_count(symbol, INTERVAL, page, page_last) == 0:
                continue
            self._budget(client.weight)  # counted; an asked-for check is not deferred
            try:
                result, unverified = self._check_range(client, symbol, page, page_last, now_ms, "verify")
            except RejectedRequest as exc:
                raise VerifyError(str(exc)) from None
            out["checked"] += result.agreed + result.replaced
            out["mismatches"] += result.replaced
            out["repaired"] += result.replaced
            out["unverified"] += unverified
            room = DETAILS_MAX - len(out["details"])
            out["details"].extend(result.changes[:room])
            if result.changes:
                self._log_round(symbol, page, page_last, result)
        return out

    def status(self) -> dict[str, Any]:
        with self._lock:
            s = self.stats
            return {
                "kline_checked": s.checked, "kline_mismatches": s.mismatches, "kline_repaired": s.repaired,
                "kline_unverified": s.unverified, "kline_followups_repaired": s.followups_repaired,
                "kline_check_pending": s.pending, "kline_requests": s.requests,
                "kline_checked_through": dict(self.progress), "last_kline_mismatch": self.last_mismatch,
                "kline_weight_used_1m": self._spent if self._minute == int(time.time() // 60) else 0,
                "kline_weight_limit": self.weight_limit, "kline_check_error": self.last_error,
            }
