"""The worker process: consumer-group threads (candles, analytics), the HTTP API, status, clean drain.

Roles: `all` (default), `candles` (candles + API: the DuckDB owner), `analytics` or `book` (order books from
stream:depth); each role can run as its own process, so candles, analytics and books fail separately. They scale
out by key, not by adding consumers to a group (a second consumer would see half the ticks): with one tick stream
per symbol (TICK_PARTITIONING=symbol), `SHARD=k/N` candle workers own disjoint symbols (worker/shards.py, a DuckDB
file each, any shard's API forwards to the owner) and analytics workers disjoint pairs (worker/analytics_shard.py),
each reading its streams with worker/multi_consumer.py.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import redis

from qs_common import control, deadletters, keys
from qs_common.partition import ShardSpec
from qs_common.redis_client import connect
from qs_common.redis_wait import StartupError, wait_for_redis
from qs_common.settings import Settings, Source
from qs_common.status import RateMeter, write_status
from worker.consumer import GroupConsumer, StatusHandler, relax_gc

# Each role imports its own handlers when it starts (Worker._candles/_analytics/_book, Worker._serve_api): with
# one process per group (the launcher's and compose's default), a top-level import of every role's modules put
# DuckDB, uvicorn and the research stack in the analytics process and the analytics engines (scikit-learn, scipy,
# statsmodels) in the book process: +333 MB PSS for the three processes (issue 12, docs/benchmarks.md).
if TYPE_CHECKING:
    import uvicorn

    from worker.analytics_consumer import AnalyticsHandler
    from worker.backfill.client import KlinesClient
    from worker.backfill.service import BackfillService
    from worker.book_service import SnapshotFetcher
    from worker.candle_consumer import CandleHandler
    from worker.research_service import ResearchService
    from worker.shards import OwnedSymbols, ShardRegistry
    from worker.store import CandleStore
    from worker.venue_check import SymbolValidator

log = logging.getLogger("worker")

ROLES = ("all", "candles", "analytics", "book")


class Worker:
    def __init__(self, settings: Settings, role: str = "all") -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.settings = settings
        self.role = role
        self.stop = threading.Event()
        self.r = connect(settings.redis_url, settings.redis_cluster, socket_timeout=30, health_check_interval=30)
        self.store: CandleStore | None = None
        self.consumers: dict[str, tuple[GroupConsumer, StatusHandler]] = {}
        self.threads: list[threading.Thread] = []
        self.server: uvicorn.Server | None = None
        self.backfill: BackfillService | None = None
        self.backfill_thread: threading.Thread | None = None
        self.research: ResearchService | None = None
        self.research_thread: threading.Thread | None = None
        self.book_fetcher: SnapshotFetcher | None = None
        self.book_fetcher_thread: threading.Thread | None = None
        self.rest: KlinesClient | None = None
        self.validator: SymbolValidator | None = None
        # issue 14: SHARD=k/N; partitioned mode reads the owned symbols' streams (worker/multi_consumer.py)
        self.spec = ShardSpec.parse(settings.shard)
        if not self.spec.whole and not settings.partitioned:
            raise StartupError(f"invalid setting SHARD: {self.spec} needs TICK_PARTITIONING=symbol (one tick stream "
                               "per symbol); with one stream every shard would read every tick", code=2)
        self.owned: OwnedSymbols | None = None
        self.shards: ShardRegistry | None = None
        # SYMBOLS/PAIRS seed the live registry once per Redis; from then on it is the set every process follows
        if control.seed(self.r, settings):
            log.info("control registry seeded from SYMBOLS and PAIRS")
        host = socket.gethostname()
        name = settings.consumer_name or host

        if role in ("all", "candles"):
            self._candles(name)
        if role in ("all", "analytics"):
            self._analytics(name)
        if role in ("all", "book"):  # order books from stream:depth (issue 11); idle unless ingest runs with DEPTH
            self._book(name)
        if self.store is not None:  # the API serves the DuckDB owner's candles; it starts in start()
            self.server = self._api_server(self.store)

    def _candles(self, name: str) -> None:
        """The candle group, the backfill, research and (started later) the API: the DuckDB owner's role."""
        from worker.backfill.client import KlinesClient
        from worker.backfill.service import BackfillService
        from worker.candle_consumer import CandleHandler
        from worker.research_service import ResearchService
        from worker.venue_check import SymbolValidator

        settings = self.settings
        self.store = open_store(settings)
        handler = CandleHandler(self.store, self.r, int(settings.trade_retention_h * 3_600_000))
        if settings.partitioned:
            self._add_candle_shard(handler, f"candles-{name}")
        else:
            self._add("candles", keys.CANDLES_GROUP, f"candles-{name}", handler, flat_fields=True,
                      linger_ms=settings.candle_linger_ms)
        # Not for the synthetic feed: Binance's real klines would be merged into made-up prices.
        # The kline check runs in the backfill thread, with or without backfill.
        rest_on = settings.backfill_enabled or settings.kline_check_on
        # One REST client (one weight budget) for the backfill and the API's symbol check. The check asks
        # the venue only for the live feed: synthetic, replayed or tick-file symbols need not trade there.
        if settings.source is Source.BINANCE or (rest_on and settings.source is not Source.SYNTHETIC):
            self.rest = KlinesClient(settings.rest_url, settings.venue, settings.rest_weight_limit, self.stop)
        self.validator = SymbolValidator(settings.venue, self.rest if settings.source is Source.BINANCE else None)
        if rest_on and settings.source is not Source.SYNTHETIC:  # before the consumer starts
            self.backfill = BackfillService(settings, self.store, self.r, f"backfill-{name}", self.rest)
        # pair scans and GARCH fits read stored candles: in the DuckDB owner, in a thread of their own
        self.research = ResearchService(settings, self.store, self.r)

    def _analytics(self, name: str) -> None:
        from worker.analytics_consumer import AnalyticsHandler

        a_handler = AnalyticsHandler(self.settings, self.r)
        if self.settings.partitioned:
            self._add_analytics_shard(a_handler, f"analytics-{name}")
        else:
            # flat replies on the consumer's own raw links (hiredis-packed XREADGROUP, packed XACK), as the candle
            # group: −15 % CPU per tick at live batch sizes (~10 entries), the same entries (issue 12, benchmarks)
            self._add("analytics", keys.ANALYTICS_GROUP, f"analytics-{name}", a_handler, flat_fields=True)

    def _book(self, name: str) -> None:
        from worker.book_service import BookHandler, SnapshotFetcher, fetches_snapshots

        wanted: queue.Queue[str] | None = queue.Queue() if fetches_snapshots(self.settings) else None
        if wanted is not None:
            self.book_fetcher = SnapshotFetcher(self.settings, self.r, wanted, self.stop)
        b_handler = BookHandler(self.settings, self.r, wanted, self.book_fetcher)
        self._add("book", keys.BOOK_GROUP, f"book-{name}", b_handler, keys.DEPTH_STREAM)

    def _add(self, label: str, group: str, consumer: str, handler: StatusHandler, stream: str | None = None,
             flat_fields: bool = False, linger_ms: int = 0) -> None:
        s = self.settings
        c = GroupConsumer(self.r, stream or s.ticks_stream, group, consumer, handler, s.batch_for(group),
                          s.worker_block_ms, s.claim_idle_ms, retries=s.batch_retries,
                          deadletter_maxlen=deadletters.maxlen(s.deadletter_max_mb), source=keys.worker_status(label),
                          flat_fields=flat_fields, linger_ms=linger_ms)
        self.consumers[label] = (c, handler)

    def _options(self, source: str, group: str) -> dict[str, object]:
        s = self.settings
        return {"batch": s.batch_for(group), "block_ms": s.worker_block_ms, "claim_idle_ms": s.claim_idle_ms,
                "retries": s.batch_retries, "deadletter_maxlen": deadletters.maxlen(s.deadletter_max_mb),
                "source": source}

    def _add_candle_shard(self, handler: CandleHandler, consumer: str) -> None:
        """Candles of the owned symbols' streams; a shard of N > 1 registers in shards:candles."""
        from worker.multi_consumer import MultiStreamConsumer
        from worker.shards import OwnedSymbols, ShardRegistry

        owned = self.owned = OwnedSymbols(self.r, self.spec)
        base = self.settings.ticks_stream

        def streams() -> list[str]:
            return [keys.tick_stream(base, sym) for sym in owned.refresh()]

        status = keys.STATUS_WORKER_CANDLES if self.spec.whole else keys.candles_shard_status(
            self.spec.index, self.spec.count)
        c = MultiStreamConsumer(self.r, streams, keys.CANDLES_GROUP, consumer, handler, flat_fields=True,
                                **self._options(status, keys.CANDLES_GROUP))  # type: ignore[arg-type]
        self.consumers["candles"] = (c, handler)
        if not self.spec.whole:
            self.shards = ShardRegistry(self.r, self.spec, self.settings.advertise_url)

    def _add_analytics_shard(self, handler: AnalyticsHandler, consumer: str) -> None:
        """The owned pairs' legs' streams, merged in ingest order, with the shard's own group."""
        from worker.analytics_shard import group_name, status_name
        from worker.multi_consumer import MultiStreamConsumer

        c = MultiStreamConsumer(self.r, handler.streams, group_name(self.spec), consumer, handler, ordered=True,
                                hold_ms=self.settings.merge_hold_ms, join=handler.shard.join,
                                **self._options(status_name(self.spec), group_name(self.spec)))  # type: ignore[arg-type]
        handler.shard.bound = c.bound
        self.consumers["analytics"] = (c, handler)

    def _redis_ok(self) -> bool:
        try:
            return bool(self.r.ping())
        except (redis.RedisError, OSError):
            return False

    def _status_loop(self) -> None:
        meters = {label: RateMeter() for label in self.consumers}
        while not self.stop.wait(1.0):
            self.write_status(meters)

    def write_status(self, meters: dict[str, RateMeter] | None = None) -> None:
        if self.server is not None:
            try:
                state = "stopping" if self.stop.is_set() else ("serving" if self.server.started else "starting")
                write_status(self.r, keys.STATUS_WORKER_API, {"state": state, "port": self.settings.api_port})
            except (redis.RedisError, OSError) as exc:
                log.debug("status write failed: %s", exc)
        for label, (c, handler) in self.consumers.items():
            try:
                lag = c.lag()
                record = {
                    "state": c.stats.state if not self.stop.is_set() else "stopping",
                    "entries": c.stats.entries, "batches": c.stats.batches,
                    "failed_batches": c.stats.failed_batches, "quarantined": c.stats.quarantined,
                    "last_quarantine": c.stats.last_quarantine, "last_error": c.stats.last_error,
                    "entries_per_s": meters[label].rate(c.stats.entries) if meters else None,
                    **lag, **handler.status(),
                }
                write_status(self.r, c.source, record)
            except (redis.RedisError, OSError) as exc:
                log.debug("status write failed: %s", exc)
        if self.shards is not None and self.owned is not None and not self.stop.is_set():
            try:
                self.shards.beat(self.owned.symbols)
            except (redis.RedisError, OSError) as exc:
                log.debug("shard registration failed: %s", exc)
        if self.backfill is not None:
            try:
                write_status(self.r, keys.STATUS_WORKER_BACKFILL, self.backfill.status())
            except (redis.RedisError, OSError) as exc:
                log.debug("status write failed: %s", exc)

    def start(self) -> None:
        # Bind before anything runs: a worker without its API would look alive while /health never answers.
        api_socket = bind_api(self.settings) if self.store is not None else None
        for label, (c, _) in self.consumers.items():
            t = threading.Thread(target=c.run, args=(self.stop,), name=f"consumer-{label}", daemon=True)
            t.start()
            self.threads.append(t)
        if self.backfill is not None:
            self.backfill_thread = threading.Thread(target=self.backfill.run, args=(self.stop,), name="backfill",
                                                    daemon=True)
            self.backfill_thread.start()
        if self.research is not None:
            self.research_thread = threading.Thread(target=self.research.run, args=(self.stop,), name="research",
                                                    daemon=True)
            self.research_thread.start()
        if self.book_fetcher is not None:
            self.book_fetcher_thread = threading.Thread(target=self.book_fetcher.run, name="book-snapshots",
                                                        daemon=True)
            self.book_fetcher_thread.start()
        threading.Thread(target=self._status_loop, name="status", daemon=True).start()
        if self.server is not None and api_socket is not None:
            t = threading.Thread(target=self.server.run, args=([api_socket],), name="api", daemon=True)
            t.start()
            self.api_thread = t
            log.info("API on %s:%d", self.settings.api_host, self.settings.api_port)

    def _api_server(self, store: CandleStore) -> uvicorn.Server:
        import uvicorn

        from worker.api import create_app
        from worker.lag import consumer_lag

        app = create_app(store, self._redis_ok, self.settings,
                         verify=self.backfill.verify if self.backfill is not None else None,
                         research=self.research, book=self.r.get,
                         control=(self.r, self.validator) if self.validator is not None else None,
                         shards=self.shards, lag=lambda: consumer_lag(self.r, self.settings))
        config = uvicorn.Config(app, host=self.settings.api_host, port=self.settings.api_port,
                                log_level="warning", access_log=False, lifespan="off")
        return uvicorn.Server(config)

    def drain(self) -> None:
        """Stop reading, finish the batches in hand (they are acknowledged), stop the API, close DuckDB."""
        log.info("draining")
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        if self.backfill_thread is not None:
            self.backfill_thread.join(timeout=15)
        if self.book_fetcher_thread is not None:
            self.book_fetcher_thread.join(timeout=15)
        if self.research_thread is not None:
            self.research_thread.join(timeout=30)  # a scan in progress finishes (seconds), then DuckDB closes
        for _, handler in self.consumers.values():
            hooks = getattr(handler, "webhooks", None)  # the analytics handler's webhook delivery threads
            if hooks is not None:
                hooks.close(timeout=5)  # a POST in flight ends within its timeout; unsent alerts stay pending
        if self.server is not None:
            self.server.should_exit = True
            self.api_thread.join(timeout=10)
        self.write_status()
        if self.shards is not None:
            try:
                self.shards.leave()
            except (redis.RedisError, OSError) as exc:
                log.debug("shard deregistration failed: %s", exc)
        if self.rest is not None:
            self.rest.close()
        if self.store is not None:
            self.store.close()
        self.r.close()
        log.info("stopped")


def open_store(settings: Settings) -> CandleStore:
    import duckdb

    from worker.store import CandleStore

    try:
        return CandleStore(settings.duckdb_path)
    except (duckdb.Error, OSError) as exc:  # e.g. another worker holds the file's lock
        raise StartupError(f"cannot open the DuckDB file {settings.duckdb_path} (DATA_DIR={settings.data_dir}): "
                           f"{' '.join(str(exc).split())}") from None


def bind_api(settings: Settings) -> socket.socket:
    """The API's listening socket, bound now so that a taken port stops start-up with one line."""
    host, port = settings.api_host, settings.api_port
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # taken port, unknown host name, address not on this machine
        sock.close()
        raise StartupError(f"cannot serve the API on API_HOST={host} API_PORT={port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def run(settings: Settings, role: str = "all") -> int:
    """Run until SIGTERM/SIGINT; start-up problems end it with one line on stderr and a non-zero status."""
    worker: Worker | None = None
    try:
        wait_for_redis(settings.redis_url, settings.redis_wait_s, settings.redis_cluster)
        worker = Worker(settings, role)
        # After the role's imports (Worker imports only its role's modules): a full collection walks every object
        # of the process (~190k once numpy, scipy and scikit-learn are loaded: 150 ms at load 10) and a batch of
        # replies triggers one now and then, holding every tick behind it. Start-up objects are frozen out of
        # collections, which run less often (issue 12, docs/benchmarks.md). Every role.
        relax_gc()
        return _serve(worker)
    except StartupError as exc:
        if worker is not None and worker.store is not None:
            worker.store.close()
        print(exc, file=sys.stderr)
        return exc.code


def _serve(worker: Worker) -> int:
    stop_requested = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    worker.start()
    while not stop_requested.wait(0.5):
        if worker.threads and not any(t.is_alive() for t in worker.threads):
            log.error("all consumers ended unexpectedly")
            break
        time.sleep(0)
    worker.drain()
    return 0
