"""The analytics consumer group: ticks -> aligned pair observations -> metrics on `stream:analytics`.

The math lives in `qs_analytics` (pure, no I/O); this module reads ticks, feeds the as-of aligners and
engines, runs the scheduled ADF, evaluates the alert rules stored in Redis on every update, throttles what
it publishes (at most ANALYTICS_MAX_RATE entries per second of observation time per pair, and always on an
alert), and keeps the latest top of book and per-symbol statistics in Redis.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from typing import Any

import redis

from qs_analytics.alerts import AlertEvaluator, AlertRule
from qs_analytics.align import PairAligner
from qs_analytics.engine import PairConfig, PairEngine
from qs_analytics.symbol import SymbolStats, book_metrics
from qs_common import codec, keys
from qs_common.settings import Settings
from worker import webhooks
from worker.consumer import Entry, Rejected
from worker.trade_checks import MAX_TIME_MS

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
RULES_REFRESH_S = 1.0
PUBLISH_WITHIN_S = 0.005


def pair_config(settings: Settings) -> PairConfig:
    return PairConfig(
        window=settings.ols_window, window_ms=settings.analytics_window_ms, beta_source=settings.beta_source,
        delta=settings.kalman_delta, obs_noise=settings.kalman_obs_noise, init_cov=settings.kalman_init_cov,
        adf_every_ms=int(settings.adf_every_s * 1000),
        theilsen=settings.theilsen or settings.beta_source == "theilsen",
        huber_every_n=settings.huber_every_n, huber_every_ms=settings.huber_every_ms,
    )


def _price(text: str, name: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):  # a NaN or inf would poison every rolling statistic after it
        raise ValueError(f"{name} {text[:40]!r} is not a finite number > 0")
    return value


def _amount(text: str, name: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} {text[:40]!r} is not a finite number >= 0")
    return value


def _time(ts: int) -> int:
    if not 0 < ts <= MAX_TIME_MS:  # a time far away would hold the as-of alignment of every later tick
        raise ValueError(f"time {ts} ms outside 1..{MAX_TIME_MS} (year 9999)")
    return ts


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


class AnalyticsHandler:
    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        self.r = r
        self.use_mid = settings.analytics_price == "mid"
        config = pair_config(settings)
        self.pairs = [(PairAligner(y, x), PairEngine(config)) for y, x in settings.pair_legs()]
        self.symbol_stats = {s: SymbolStats(settings.symbol_window) for s in settings.symbols}
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

    def status(self) -> dict[str, Any]:
        """Counters for the consumer's status record (`status:worker-analytics`)."""
        return {"last_event_ms": self.last_event_ms, "observations": self.observations, "published": self.published,
                "alerts_fired": self.alerts_fired, "bad_rules": self.bad_rules, "errors": self.errors}

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

    def _trade(self, t: codec.TradeColumns, i: int) -> tuple[str, int, float, int] | None:
        """The trade's (symbol, time, price, recv) for the aligners; ValueError naming what it cannot use."""
        sym, ts, price, qty = t.symbols[i], _time(t.times[i]), _price(t.prices[i], "price"), _amount(t.qtys[i], "qty")
        stats = self.symbol_stats.get(sym)
        if stats is not None:
            snap = self.snapshots[sym] = stats.update(ts, price, qty)
            if self.alerts.has_symbol_rules:  # asdict per trade only when some rule watches symbol stats
                metrics = {**_finite(asdict(snap)), **_finite(self.garch.get(sym, {}))}
                self._symbol_fired.extend(a.stream_fields() for a in self.alerts.evaluate_symbol(sym, ts, metrics))
        return None if self.use_mid else (sym, ts, price, t.recvs[i])

    def _book_tick(self, b: codec.BookColumns, i: int, books: dict[str, int]) -> tuple[str, int, float, int] | None:
        """The book update's (symbol, time, mid, recv) when the legs are priced at the mid, else None; ValueError
        naming what it cannot use."""
        sym, recv_ns, ts = b.symbols[i], b.recvs[i], b.times[i]
        bid, ask = _price(b.bids[i], "bid"), _price(b.asks[i], "ask")
        _amount(b.bid_qtys[i], "bid qty")
        _amount(b.ask_qtys[i], "ask qty")
        ts = _time(ts) if ts is not None else recv_ns // 1_000_000
        books[sym] = i  # only the newest per batch is written: its metrics are computed then
        if self.use_mid:
            return sym, ts, 0.5 * (bid + ask), recv_ns
        return None

    @staticmethod
    def _book(b: codec.BookColumns, i: int) -> dict[str, Any]:
        bid, bq, ask, aq, recv_ns, ts = b.bids[i], b.bid_qtys[i], b.asks[i], b.ask_qtys[i], b.recvs[i], b.times[i]
        return {
            "symbol": b.symbols[i], "bid": bid, "bid_qty": bq, "ask": ask, "ask_qty": aq, "update_id": b.ids[i],
            "recv_ns": recv_ns, "ts": ts if ts is not None else recv_ns // 1_000_000,
            **_finite(asdict(book_metrics(bid, bq, ask, aq))),
        }

    def __call__(self, entries: list[Entry]) -> list[Rejected]:
        """Feed the batch to the engines and publish; return the entries it cannot use (they are quarantined).

        Never raises on data: the engines' state is in memory, so a retried batch would count twice."""
        self._refresh_rules()
        batch = codec.decode_batch(entries, order=True, times=True)
        rejected: list[Rejected] = batch.undecodable
        trades, bk = batch.trades, batch.books
        books: dict[str, int] = {}  # symbol -> its newest book update in `bk`
        out: list[dict[str, str]] = []
        fired_out: list[dict[str, str]] = []
        started = time.monotonic()
        for j in batch.order:
            if out and time.monotonic() - started > PUBLISH_WITHIN_S:
                # a long batch (a backlog, a scheduled refit) must not hold back what is ready
                self._write(out, fired_out, bk, books)
                out, fired_out, books = [], [], {}
                started = time.monotonic()
            try:
                tick = self._trade(trades, j) if j >= 0 else self._book_tick(bk, ~j, books)
            except ValueError as exc:
                rejected.append((trades.entry_ids[j] if j >= 0 else bk.entry_ids[~j], str(exc)))
                continue
            if tick is None:
                continue
            sym, ts, price, recv_ns = tick
            self.last_event_ms = ts
            for aligner, engine in self.pairs:
                obs = aligner.update(sym, ts, price)
                if obs is None:
                    continue
                try:
                    metrics = engine.update(obs.ts_ms, obs.y, obs.x)
                    if engine.adf_due(obs.ts_ms):
                        engine.run_adf(obs.ts_ms)
                        metrics = {**metrics, **self._adf_fields(engine)}
                except Exception:  # in-memory state: a retried batch would count twice, so never raise
                    self.errors += 1
                    if self.errors == 1 or self.errors % 1000 == 0:
                        log.exception("analytics update failed (%d so far)", self.errors)
                    continue
                self.observations += 1
                fired = self.alerts.evaluate(aligner.pair, obs.ts_ms, metrics)
                fired_out.extend(a.stream_fields() for a in fired)
                if fired or obs.ts_ms - self.last_published_ms.get(aligner.pair, -math.inf) >= self.min_gap_ms:
                    self.last_published_ms[aligner.pair] = obs.ts_ms
                    out.append(self._entry(aligner.pair, obs.ts_ms, recv_ns, obs.y, obs.x, metrics, engine))
        self._write(out, fired_out, bk, books)
        return rejected

    @staticmethod
    def _adf_fields(engine: PairEngine) -> dict[str, float]:
        res = engine.last_adf
        if res is None or not res.ran:
            return {}
        return {"adf_stat": res.statistic, "adf_pvalue": res.p_value, "adf_lags": float(res.lags_used)}

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
            pipe.set(keys.latest_book_key(sym), json.dumps(self._book(bk, i)))
        for sym, snap in self.snapshots.items():
            self._last_snap[sym] = snap
            stats = {"symbol": sym, **_finite(asdict(snap)), **self.garch.get(sym, {})}
            pipe.set(keys.symbol_stats_key(sym), json.dumps(stats))
        self.snapshots = {}
        pipe.execute()
        self._symbol_fired = []  # only once written: a failed write keeps them for the retried batch
        self.published += len(out)
        if fired:
            self.alerts_fired += len(fired)
            log.info("%d alert(s) fired", len(fired))

    @staticmethod
    def _entry(
        pair: str, ts: int, recv_ns: int, y: float, x: float, metrics: dict[str, float], engine: PairEngine
    ) -> dict[str, str]:
        fields = {"v": SCHEMA_VERSION, "pair": pair, "ts": str(ts), "recv_ns": str(recv_ns), "y": repr(y),
                  "x": repr(x)}
        for name, value in metrics.items():
            if value == value and not math.isinf(value):
                fields[name] = repr(float(value))
        res = engine.last_adf
        if res is not None:
            fields["adf_verdict"] = res.verdict
        return fields
