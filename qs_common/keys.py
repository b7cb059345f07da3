"""Every Redis key, stream and consumer-group name in one place.

Stream names that a deployment may want to change (the tick stream) come from settings; the rest are fixed.
"""

from __future__ import annotations

DEAD_LETTER_STREAM = "stream:deadletter"
GAPS_STREAM = "stream:gaps"
ANALYTICS_STREAM = "stream:analytics"
ALERTS_STREAM = "stream:alerts"
# Depth diffs and book snapshots (issue 11): a stream of their own, so candles and analytics never read them.
DEPTH_STREAM = "stream:depth"

CANDLES_GROUP = "candles"
ANALYTICS_GROUP = "analytics"
GAPS_GROUP = "gap-repair"
BOOK_GROUP = "book"
WEBHOOKS_GROUP = "webhooks"  # on stream:alerts: the worker's webhook delivery (worker/webhooks.py)
# Groups that ingest creates (at id 0) before it publishes, so that nothing is trimmed before a worker starts.
TICK_GROUPS = (CANDLES_GROUP, ANALYTICS_GROUP)

ALERT_RULES = "alerts:rules"  # hash: rule id -> rule JSON
ALERT_RULES_SEEDED = "alerts:seeded"  # string, set once the default rule was offered: a deleted default stays deleted

# Bounds (MAXLEN, approximate) of the side streams: recent history is all anyone reads from them.
GAPS_MAXLEN = 10_000
ALERTS_MAXLEN = 10_000

# Status record names (`status:{name}`): written by each process, read by the dashboard's System page.
STATUS_INGEST = "ingest"
STATUS_WORKER_API = "worker-api"
STATUS_WORKER_BACKFILL = "worker-backfill"
STATUS_WORKER_RESEARCH = "worker-research"
STATUS_WORKER_CANDLES = "worker-candles"
STATUS_WORKER_ANALYTICS = "worker-analytics"
STATUS_WORKER_WEBHOOKS = "worker-webhooks"  # webhook delivery: delivered, failures, dropped, in hand


# Issue 14, partitioned mode (TICK_PARTITIONING=symbol, always on with REDIS_CLUSTER=true): one tick stream per
# symbol, named with the symbol's Redis Cluster hash tag so that it and every other key of the symbol share a slot.
# The default (single) mode keeps the one stream TICKS_STREAM. Depth diffs stay one stream (the book role is one
# process). Dead letters, gaps, analytics, alerts, status and control keys stay single keys.
SHARDS_CANDLES = "shards:candles"  # hash: candle shard "k/N" -> JSON {"shard", "address", "symbols", "heartbeat_ms"}
ANALYTICS_GROUP_PATTERN = "analytics-*of*"  # groups of analytics shards (any shard count), see analytics_group


def tick_stream(base: str, symbol: str) -> str:
    """The tick stream of one symbol in partitioned mode: `stream:ticks:{BTCUSDT}` for base `stream:ticks`."""
    return f"{base}:{{{symbol}}}"


def tick_stream_symbol(base: str, stream: str) -> str | None:
    """The symbol of a partitioned tick stream name (tick_stream's inverse); None for any other name."""
    prefix = base + ":{"
    if stream.startswith(prefix) and stream.endswith("}") and len(stream) > len(prefix) + 1:
        return stream[len(prefix):-1]
    return None


def tick_streams_pattern(base: str) -> str:
    """SCAN pattern of every partitioned tick stream (`*` would also match the braces, so keep them explicit)."""
    return base + ":{*}"


def tick_stream_for(base: str, symbol: str, partitioned: bool) -> str:
    """The stream a symbol's ticks are in, in either mode."""
    return tick_stream(base, symbol) if partitioned else base


def shard_label(index: int, count: int) -> str:
    """`k/N` spelt for key and group names, where a slash reads badly: `0of2`."""
    return f"{index}of{count}"


def analytics_group(index: int, count: int) -> str:
    """Consumer group of analytics shard k of M on its legs' tick streams: `analytics-0of2`. Single-stream mode and
    SHARD=0/1 keep the plain `analytics` group."""
    return f"{ANALYTICS_GROUP}-{shard_label(index, count)}"


def candles_shard_status(index: int, count: int) -> str:
    """Status record name of candle shard k of N: `worker-candles-0of2` (SHARD=0/1 keeps `worker-candles`)."""
    return f"{STATUS_WORKER_CANDLES}-{shard_label(index, count)}"


def worker_status(label: str) -> str:
    """Status record name of a worker consumer (`candles`, `analytics`, `book`): STATUS_WORKER_* above."""
    return f"worker-{label}"


def last_trade_key(venue: str) -> str:
    """Hash: symbol -> trade time (ms) of the newest trade live ingest published, so a restart knows what it missed."""
    return f"ingest:last_trade:{venue}"


def clean_stop_key(venue: str) -> str:
    """String: set (to the stop time, ms) when live ingest stopped cleanly, deleted when it starts."""
    return f"ingest:clean_stop:{venue}"


def status_key(process: str) -> str:
    """Status record of one process (JSON string with a short TTL, refreshed every second)."""
    return f"status:{process}"


STATUS_PATTERN = "status:*"


def forming_candle_key(symbol: str, interval: str) -> str:
    """Latest (possibly still forming) candle of a symbol and interval, as JSON, written by the candle consumer."""
    return f"candle:latest:{symbol}:{interval}"


def latest_book_key(symbol: str) -> str:
    """Latest top of book of a symbol, as JSON, written by the analytics consumer."""
    return f"book:latest:{symbol}"


def symbol_stats_key(symbol: str) -> str:
    """Latest per-symbol statistics (price, momentum, volatility, VWAP, ...), as JSON."""
    return f"symbol:stats:{symbol}"


def garch_key(symbol: str) -> str:
    """Latest GARCH(1,1) fit of a symbol (`garch_*` fields), as JSON, written by the worker's research thread."""
    return f"symbol:garch:{symbol}"


def book_depth_key(symbol: str) -> str:
    """Top levels of a symbol's local order book, as JSON (symbol, last_update_id, event_time, stale, bids, asks),
    written by the worker's book role every 100 ms of event time."""
    return f"book:depth:{symbol}"


def book_metrics_key(symbol: str) -> str:
    """Book metrics of a symbol (mid, microprice, spread_bps, imbalance_*, depth_*, cost_*), as JSON."""
    return f"book:metrics:{symbol}"
