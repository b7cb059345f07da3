"""Pair research in the worker: the scheduled (and on-demand) pair scan and GARCH refits, over stored candles.

Runs in its own thread (`run`), never in a consumer's: a 100-symbol scan (4,950 pairs) takes seconds of CPU
and must not hold the candle or analytics batches. It reads candles through the store's cursors and writes
its tables under the store's write lock (worker/research_store.py). One scan at a time: an on-demand scan
waits for a scheduled one in progress, and the other way round.

GARCH fits are also put in Redis (`symbol:garch:{SYMBOL}`, JSON) for the analytics process, which adds them
to `symbol:stats:{SYMBOL}` as `garch_*` fields.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

import numpy as np
import redis

from qs_analytics.backtest_metrics import periods_per_year
from qs_analytics.coint import MIN_POINTS
from qs_analytics.garch import fit_garch
from qs_analytics.scanner import scan_pairs
from qs_common import control, intervals, keys, redis_client
from qs_common.settings import Settings
from qs_common.status import write_status
from worker.research_store import ResearchStore
from worker.store import CandleStore

log = logging.getLogger("worker.research")

SCAN_INTERVALS = intervals.RESEARCH_INTERVALS
MAX_SCAN_SYMBOLS = 100
FIRST_RUN_AFTER_S = 60.0  # let start-up backfill land before the first scheduled run
GARCH_INTERVAL = "1m"  # the model is on 1m returns


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ResearchService:
    def __init__(self, settings: Settings, store: CandleStore, r: redis.Redis | None) -> None:
        self.settings = settings
        self.rs = ResearchStore(store)
        self.r = r
        self._scan_lock = threading.Lock()
        self._garch_lock = threading.Lock()
        self.stats: dict[str, Any] = {"state": "starting", "scans": 0, "scan_errors": 0, "last_scan_run": None,
                                      "last_scan_ms": None, "last_scan_s": None, "garch_fits": 0,
                                      "garch_errors": 0, "last_garch_ms": None, "last_error": None}  # fmt: skip

    # ---- the scan ----------------------------------------------------------------------------------------
    def default_symbols(self) -> list[str]:
        """SCAN_SYMBOLS, or else the live registry's active symbols (the first MAX_SCAN_SYMBOLS by name), so a
        symbol added from the screen is scanned from the next run on; SYMBOLS when Redis does not answer."""
        if self.settings.scan_symbols:
            return list(self.settings.scan_symbols)
        return list(self.active_symbols()[:MAX_SCAN_SYMBOLS])

    def active_symbols(self) -> tuple[str, ...]:
        if self.r is not None:
            try:
                return control.active_symbols(self.r)
            except (redis.RedisError, OSError) as exc:
                log.warning("cannot read the active symbols (%s); using SYMBOLS", exc)
        return self.settings.symbols

    def scan(self, symbols: list[str] | None = None, interval: str | None = None, lookback: int | None = None,
             trigger: str = "demand", max_lag: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Run one scan and store it; returns the run's record. ValueError for parameters that cannot work."""
        s = self.settings
        syms = list(dict.fromkeys(x.upper() for x in (symbols or self.default_symbols())))
        iv = interval or s.scan_interval
        lb = lookback or s.scan_lookback
        if not 2 <= len(syms) <= MAX_SCAN_SYMBOLS:
            raise ValueError(f"symbols: need 2 to {MAX_SCAN_SYMBOLS} symbols, got {len(syms)}")
        if iv not in SCAN_INTERVALS:
            raise ValueError(f"interval: {iv!r} is not one of {', '.join(SCAN_INTERVALS)}")
        if not MIN_POINTS <= lb <= 100_000:
            raise ValueError(f"lookback: must be {MIN_POINTS} to 100000 candles, got {lb}")
        if max_lag is not None and max_lag < 0:
            raise ValueError(f"max_lag: must be >= 0, got {max_lag}")
        params = {"symbols": syms, "interval": iv, "lookback": lb, "max_lag": max_lag,
                  "autolag": "aic" if max_lag is None else None, "test": "engle-granger (MacKinnon, trend c)",
                  "hurst_max_lag": 20, "liquidity": "median quote volume per candle, the thinner leg",
                  "spread_bps": "latest quoted spread (top of book), the wider leg"}  # fmt: skip
        with self._scan_lock:
            t0 = time.monotonic()
            run_id = self.rs.new_run(now_ms(), trigger, iv, lb, syms, params)
            closes = None
            try:
                closes = self.rs.closes(syms, iv, lb)
                if closes.open_ms.size < MIN_POINTS:
                    raise ValueError(f"only {closes.open_ms.size} {iv} candle times common to all symbols; "
                                     f"the scan needs at least {MIN_POINTS}")  # fmt: skip
                table = scan_pairs(closes.closes, syms, closes.liquidity, self._spreads_bps(syms),
                                   max_lag=max_lag, autolag="aic" if max_lag is None else None)  # fmt: skip
                self.rs.finish_run(run_id, now_ms(), table, closes, None)
                self.stats["scans"] += 1
            except ValueError as exc:
                self.rs.finish_run(run_id, now_ms(), None, closes, str(exc))
                self.stats["scan_errors"] += 1
                self.stats["last_error"] = f"scan {run_id}: {exc}"
            self.stats.update(last_scan_run=run_id, last_scan_ms=now_ms(), last_scan_s=round(time.monotonic() - t0, 3))
        run = self.rs.run(str(run_id))
        assert run is not None
        return run

    def _spreads_bps(self, symbols: list[str]) -> np.ndarray:
        """The latest quoted spread per symbol from the analytics' top of book (nan where there is none)."""
        out = np.full(len(symbols), np.nan)
        if self.r is None:
            return out
        try:
            raws = redis_client.get_many(self.r, [keys.latest_book_key(s) for s in symbols])
        except (redis.RedisError, OSError):
            return out
        for i, raw in enumerate(raws):  # type: ignore[arg-type]
            try:
                v = float(json.loads(raw)["spread_bps"]) if raw else math.nan
            except (ValueError, KeyError, TypeError):
                v = math.nan
            out[i] = v if math.isfinite(v) else math.nan
        return out

    # ---- GARCH -------------------------------------------------------------------------------------------
    def garch(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        """Refit GARCH(1,1) for each symbol on its last `GARCH_LOOKBACK` 1m candles; returns what was stored.

        A symbol that cannot be fitted (too few candles, constant prices) is reported in `errors`, not raised.
        """
        out: list[dict[str, Any]] = []
        with self._garch_lock:
            for sym in symbols or list(self.active_symbols()):
                times, closes = self.rs.closes_of(sym, GARCH_INTERVAL, None, None, self.settings.garch_lookback)
                fitted = now_ms()
                try:
                    if len(closes) < 2:
                        raise ValueError(f"no stored {GARCH_INTERVAL} candles")
                    ppy = periods_per_year([float(t) for t in times])
                    fit = fit_garch(closes, ppy)
                except ValueError as exc:
                    self.stats["garch_errors"] += 1
                    self.stats["last_error"] = f"garch {sym}: {exc}"
                    out.append({"symbol": sym, "error": str(exc)})
                    continue
                self.rs.save_garch(sym, fitted, GARCH_INTERVAL, times[0], times[-1], fit)
                self.stats["garch_fits"] += 1
                self._publish_garch(sym, fitted, fit.as_dict())
                out.append({"symbol": sym, "fitted_ms": fitted, "interval": GARCH_INTERVAL,
                            "first_open_ms": times[0], "last_open_ms": times[-1], **fit.as_dict()})  # fmt: skip
            self.stats["last_garch_ms"] = now_ms()
        return out

    def _publish_garch(self, symbol: str, fitted_ms: int, fit: dict[str, Any]) -> None:
        if self.r is None:
            return
        fields = {f"garch_{k}": v for k, v in fit.items() if isinstance(v, float) and math.isfinite(v)}
        fields["garch_fitted_ms"] = fitted_ms
        try:
            self.r.set(keys.garch_key(symbol), json.dumps(fields))
        except (redis.RedisError, OSError) as exc:  # the fit is stored; Redis gets the next one
            log.warning("cannot publish GARCH of %s: %s", symbol, exc)

    # ---- the schedule ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        s = self.settings
        start = time.monotonic()
        next_scan = start + min(s.scan_every_s, FIRST_RUN_AFTER_S) if s.scan_every_s > 0 else math.inf
        next_garch = start + min(s.garch_every_s, FIRST_RUN_AFTER_S) if s.garch_every_s > 0 else math.inf
        self.stats["state"] = "idle"
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_scan:
                    self.stats["state"] = "scanning"
                    self.scan(trigger="schedule")
                    next_scan = time.monotonic() + s.scan_every_s
                elif now >= next_garch:
                    self.stats["state"] = "fitting-garch"
                    self.garch()
                    next_garch = time.monotonic() + s.garch_every_s
            except Exception as exc:  # a research failure must never end the worker: logged, retried next period
                log.exception("research run failed")
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
                next_scan = max(next_scan, time.monotonic() + max(s.scan_every_s, 10.0))
                next_garch = max(next_garch, time.monotonic() + max(s.garch_every_s, 10.0))
            self.stats["state"] = "idle"
            self.write_status()
            stop.wait(1.0)
        self.stats["state"] = "stopped"
        self.write_status()

    def write_status(self) -> None:
        if self.r is None:
            return
        try:
            write_status(self.r, keys.STATUS_WORKER_RESEARCH, {**self.stats, "scan_every_s": self.settings.scan_every_s,
                                                     "garch_every_s": self.settings.garch_every_s})
        except (redis.RedisError, OSError) as exc:
            log.debug("status write failed: %s", exc)

