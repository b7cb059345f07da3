"""Typed settings from the environment, read once at start-up and passed down.

A bad value stops start-up with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qs_analytics import defaults as engine
from qs_common.keys import CANDLES_GROUP
from qs_common.partition import ShardSpec
from qs_common.symbols import is_symbol
from qs_common.venues.binance.config import REST_URLS, WS_URLS, Venue

CANDLE_BATCH = 20_000  # the candle group's entries per read when WORKER_BATCH is not set (Settings.batch_for)


class Source(StrEnum):
    BINANCE = "binance"
    REPLAY = "replay"
    SYNTHETIC = "synthetic"
    TICKS = "ticks"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _symbol_tuple(value: tuple[str, ...]) -> tuple[str, ...]:
    """Upper-cased, first occurrence kept, each a symbol (ValueError naming the first that is not)."""
    out = tuple(dict.fromkeys(s.upper() for s in value))
    for s in out:
        if not is_symbol(s):
            raise ValueError(f"{s!r} is not a symbol (letters and digits, like BTCUSDT)")
    return out


class Settings(BaseSettings):
    """Every setting of every process. Names are the environment variables (case-insensitive)."""

    # allow_inf_nan=False: `inf` or `nan` for a number is a mistake, never a wish for "no limit"
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", frozen=True, allow_inf_nan=False
    )

    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT", "ETHUSDT")
    venue: Venue = Venue.BINANCE_SPOT
    binance_ws_url: str = ""
    binance_rest_url: str = ""
    redis_url: str = "redis://localhost:6379/0"
    # Issue 14: REDIS_URL names any seed node of a Redis Cluster (qs_common/redis_client.py).
    redis_cluster: bool = False
    # Issue 14: this worker's shard `k/N` (k from 0) of its role; symbols (candles) or pairs (analytics) are assigned
    # by the stable hash of qs_common/partition.py. `0/1` owns everything.
    shard: str = "0/1"
    data_dir: Path = Path("./data")
    # Loopback unless told otherwise: compose sets 0.0.0.0 inside its private network.
    api_host: str = Field("127.0.0.1", min_length=1)
    api_port: int = Field(8000, ge=1, le=65535)
    api_url: str = "http://localhost:8000"
    # Issue 14: where the other candle shards reach this one's API (registered in shards:candles); empty:
    # http://{API_HOST}:{API_PORT}
    api_advertise_url: str = ""
    # Issue 14: an analytics shard merges its legs' streams in ingest order; a stream quiet this long stops holding
    # the others back (worker/multi_consumer.py): the exact order costs up to this much latency on a quiet leg
    merge_hold_ms: int = Field(100, ge=0, le=10_000)
    log_level: str = "INFO"
    # Optional shared secret. When set, the worker API's writes need `Authorization: Bearer <token>` and the
    # dashboard asks for it before showing anything. Empty: no authentication (loopback-only use).
    access_token: str = ""
    dashboard_host: str = Field("127.0.0.1", min_length=1, description="where the local launcher binds the dashboard")
    redis_wait_s: float = Field(10.0, ge=0, le=600, description="how long start-up retries an unreachable Redis")

    source: Source = Source.BINANCE
    replay_files: Annotated[tuple[Path, ...], NoDecode] = ()
    replay_speed: float = Field(1.0, ge=0, description="replay and tick-file pace (0 = as fast as possible)")
    # tick files (`timestamp,symbol,price,size` CSV or NDJSON), replayed through the same parser and publisher
    tick_files: Annotated[tuple[Path, ...], NoDecode] = ()
    synthetic_seed: int = 7
    synthetic_rate: float = Field(50.0, gt=0, description="synthetic frames per second per symbol")
    synthetic_history_h: float = Field(24.0, ge=0, le=24 * 30,
                                       description="hours of past candles the synthetic source imports first")

    # Depth diffs (`<symbol>@depth@100ms`) to stream:depth for the worker's book role; replays publish their
    # recordings' REST snapshot lines too. See the README for the measured cost that chose the default.
    depth: bool = True
    book_levels: int = Field(50, ge=1, le=5_000, description="levels per side the book role writes to book:depth")
    # ~1.3 KB an entry: 20,000 is ~26 MB and ~16 minutes of two symbols' diffs (the book role reads them within
    # milliseconds); trimmed safely, like the tick stream: never an entry the book group has not acknowledged
    depth_maxlen: int = Field(20_000, ge=1_000, description="bound of stream:depth in entries")
    ticks_stream: str = Field("stream:ticks", min_length=1)
    # Issue 14: `symbol` = one tick stream per symbol, `{TICKS_STREAM}:{SYM}` (qs_common/keys.py tick_stream), so a
    # symbol's ticks live on one Redis Cluster node and each shard reads only its own symbols. Unset: `single` (one
    # stream, as always) on a single node, `symbol` with REDIS_CLUSTER=true, where one stream would put every tick on
    # one node; `single` with REDIS_CLUSTER=true is refused.
    tick_partitioning: Literal["single", "symbol"] | None = None
    stream_maxlen: int = Field(1_000_000, ge=1_000)
    publish_batch: int = Field(1_000, ge=1, le=100_000)
    publish_flush_ms: int = Field(2, ge=1, le=10_000)  # the longest a tick waits before XADD (issue 12)
    stale_feed_s: float = Field(10.0, gt=0)
    reconnect_after_h: float = Field(23.5, gt=0, le=24)
    backoff_max_s: float = Field(60.0, gt=0)

    # Entries per read. Unset, the candle group reads CANDLE_BATCH (`batch_for`): its per-batch cost (DuckDB
    # statements, ~20 ms whatever the batch) halves its CPU per entry from 5,000 to 20,000 (docs/benchmarks.md,
    # "Worker, candle group"); the other groups keep 5,000, which bounds what analytics holds before it publishes.
    worker_batch: int = Field(5_000, ge=1, le=100_000)
    worker_block_ms: int = Field(200, ge=1, le=60_000)
    # The candle group waits this long after a batch that was not full before reading again, so it stores a few
    # batches a second instead of one per ingest flush: each batch's DuckDB statements cost ~17 ms of CPU whatever
    # its size, and at 5k frames/s that took most of a core from the analytics process and Redis (the p99 tail).
    candle_linger_ms: int = Field(200, ge=0, le=5_000)
    claim_idle_ms: int = Field(30_000, ge=1_000)
    consumer_name: str = ""
    # A batch that fails this many times in a row is bisected and its poison entries dead-lettered.
    batch_retries: int = Field(3, ge=1, le=100)
    trade_retention_h: float = Field(48.0, gt=0)
    backfill_enabled: bool = True
    backfill_lookback_h: float = Field(24.0, gt=0, le=24 * 30)
    rest_weight_limit: int = Field(1_000, ge=10, le=6_000, description="REST weight per minute the worker may use")
    # Every closed 1m candle compared with Binance's own kline; None: on for the live feed, off otherwise.
    kline_check: bool | None = None
    kline_check_delay_s: float = Field(90.0, ge=0, le=3_600, description="check a minute this long after it closed")
    kline_check_weight: int = Field(200, ge=1, le=6_000, description="REST weight per minute the check may use")

    # Edge validation and bounded inputs
    # up to ten years: old recordings played through a live-like feed (tests, demos) need a wide window
    tick_max_skew_s: float = Field(
        86_400.0, gt=0, le=3_650 * 86_400, description="a tick's exchange time must lie this close to its receive time"
    )
    api_max_body_mb: float = Field(50.0, gt=0, le=1_024, description="largest request body the API reads")
    import_max_rows: int = Field(1_000_000, ge=1, le=50_000_000)
    deadletter_max_mb: float = Field(64.0, gt=0, le=4_096, description="bound of the dead-letter stream in bytes")

    analytics_price: Literal["trade", "mid"] = "trade"
    # Default: the second symbol against the first (ETHUSDT/BTCUSDT with the default symbols).
    pairs: Annotated[tuple[str, ...] | None, NoDecode] = None
    # The engine's defaults are qs_analytics.defaults (PairConfig and the batch command read them too).
    ols_window: int = Field(engine.WINDOW, ge=2, le=100_000, description="rolling window in observations")
    # bounded as the live registry bounds a pair's window_ms (qs_common/control.py: 30 days), which it seeds
    analytics_window_ms: int | None = Field(None, gt=0, le=2_592_000_000, description="drop older observations")
    beta_source: Literal["ols", "kalman", "huber", "theilsen"] = "ols"
    # Theil-Sen costs ~50 ms a refit: on when it is the beta source or asked for
    theilsen: bool = engine.THEILSEN
    # Huber refits (~4 ms each) every N observations or T ms of observation time, whichever comes first
    huber_every_n: int = Field(engine.HUBER_EVERY_N, ge=1)
    huber_every_ms: int = Field(engine.HUBER_EVERY_MS, gt=0)
    # At BTC-level prices the state noise must be tiny, or the filter fits every y exactly.
    kalman_delta: float = Field(engine.KALMAN_DELTA, gt=0, lt=1)
    kalman_obs_noise: float = Field(engine.KALMAN_OBS_NOISE, gt=0, allow_inf_nan=False)
    kalman_init_cov: float = Field(engine.KALMAN_INIT_COV, gt=0)
    adf_every_s: float = Field(engine.ADF_EVERY_MS / 1000, gt=0)
    symbol_window: int = Field(300, ge=2, le=100_000)
    analytics_max_rate: float = Field(10.0, gt=0, description="analytics entries per second per pair at most")
    analytics_maxlen: int = Field(100_000, ge=100)

    # Pair research (issue 9): the scanner and GARCH run in the worker that owns the DuckDB file
    scan_every_s: float = Field(900.0, ge=0, le=7 * 86_400,
                                description="scheduled pair scan period (0 = on demand only)")
    scan_interval: Literal["1m", "5m", "1h", "1d"] = "1m"
    scan_lookback: int = Field(1_440, ge=50, le=100_000, description="candles per symbol the scan reads")
    # empty: SYMBOLS. Up to 100 symbols (4,950 pairs)
    scan_symbols: Annotated[tuple[str, ...], NoDecode] = ()
    garch_every_s: float = Field(3_600.0, ge=0, le=7 * 86_400,
                                 description="GARCH refit period (0 = on demand only)")
    garch_lookback: int = Field(1_440, ge=31, le=100_000, description="1m candles per symbol a GARCH fit reads")

    @field_validator("symbols", "pairs", "replay_files", "tick_files", "scan_symbols", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split(value)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = _symbol_tuple(value)
        if not out:
            raise ValueError("at least one symbol is required")
        return out

    @field_validator("scan_symbols")
    @classmethod
    def _scan_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        n = len(dict.fromkeys(s.upper() for s in value))
        if n > 100:
            raise ValueError(f"at most 100 symbols (4,950 pairs), got {n}")
        return _symbol_tuple(value)

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str) -> str:
        return str(ShardSpec.parse(value))

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        out = []
        for p in value:
            legs = [leg.strip().upper() for leg in p.split("/")]
            if len(legs) != 2 or not all(is_symbol(leg) for leg in legs) or legs[0] == legs[1]:
                raise ValueError(f"{p!r} is not a pair; write Y/X, like ETHUSDT/BTCUSDT")
            out.append("/".join(legs))
        return tuple(out)

    @field_validator("ticks_stream", "consumer_name", "access_token", "api_host", "dashboard_host", mode="before")
    @classmethod
    def _stripped(cls, value: object) -> object:
        # "  " is an empty name, not a name of two spaces
        return value.strip() if isinstance(value, str) else value

    @property
    def kline_check_on(self) -> bool:
        """The kline check runs by default only against the live venue (synthetic prices have no klines)."""
        return self.kline_check if self.kline_check is not None else self.source == Source.BINANCE

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("binance_ws_url", "binance_rest_url", "api_url", "api_advertise_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^(wss?|https?)://[^\s]+$", value):
            raise ValueError("must be a ws://, wss://, http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _pair_legs_known(self) -> Settings:
        if self.pairs is None:
            default = (f"{self.symbols[1]}/{self.symbols[0]}",) if len(self.symbols) > 1 else ()
            object.__setattr__(self, "pairs", default)
        for p in self.pairs or ():
            for leg in p.split("/"):
                if leg not in self.symbols:
                    raise ValueError(f"PAIRS: {leg} of {p} is not in SYMBOLS")
        return self

    @model_validator(mode="after")
    def _partitioning(self) -> Settings:
        if self.tick_partitioning is None:
            object.__setattr__(self, "tick_partitioning", "symbol" if self.redis_cluster else "single")
        elif self.tick_partitioning == "single" and self.redis_cluster:
            raise ValueError("TICK_PARTITIONING: single is not possible with REDIS_CLUSTER=true (use symbol)")
        return self

    def batch_for(self, group: str) -> int:
        """Entries per read of a consumer group: WORKER_BATCH when set, else the group's default."""
        if group == CANDLES_GROUP and "worker_batch" not in self.model_fields_set:
            return CANDLE_BATCH
        return self.worker_batch

    @property
    def partitioned(self) -> bool:
        """Ticks go to one stream per symbol (`TICK_PARTITIONING=symbol`, always so on a Redis Cluster)."""
        return self.tick_partitioning == "symbol"

    @property
    def advertise_url(self) -> str:
        """This worker's API address for the other candle shards (API_ADVERTISE_URL)."""
        return self.api_advertise_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return self.binance_ws_url or WS_URLS[self.venue]

    @property
    def rest_url(self) -> str:
        return self.binance_rest_url or REST_URLS[self.venue]

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "market_data.duckdb"

    def pair_legs(self) -> list[tuple[str, str]]:
        """Configured pairs as (y, x) tuples."""
        return [tuple(p.split("/")) for p in self.pairs or ()]  # type: ignore[misc]


def describe_error(err: ValidationError) -> list[str]:
    """One line per bad variable, naming it as the user spells it in the environment."""
    lines = []
    for e in err.errors():
        name = str(e["loc"][0]).upper() if e["loc"] else ""
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"invalid setting {name}: {msg}" if name else f"invalid settings: {msg}")
    return lines


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; on a bad value print one line naming the variable and exit with status 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        for line in describe_error(err):
            print(line, file=sys.stderr)
        raise SystemExit(2) from None
