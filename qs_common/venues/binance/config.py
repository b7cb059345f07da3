"""Binance's venues, URLs, stream names, REST endpoints, weights and limits, and the backoff both clients use."""

from __future__ import annotations

import random
from enum import StrEnum


class Venue(StrEnum):
    BINANCE_SPOT = "binance-spot"
    BINANCE_USDM = "binance-usdm"
    BINANCE_US = "binance-us"


WS_URLS = {
    Venue.BINANCE_SPOT: "wss://stream.binance.com:9443",
    Venue.BINANCE_USDM: "wss://fstream.binance.com",
    Venue.BINANCE_US: "wss://stream.binance.us:9443",
}
REST_URLS = {
    Venue.BINANCE_SPOT: "https://api.binance.com",
    Venue.BINANCE_USDM: "https://fapi.binance.com",
    Venue.BINANCE_US: "https://api.binance.us",
}

# Combined-stream names are `<symbol lower-case>@<kind>`. Ingest subscribes to trades and book tickers, and with
# DEPTH=true to `@depth@100ms` diffs (`wire.DepthUpdateMsg`).
TRADE_STREAM = "trade"
BOOK_TICKER_STREAM = "bookTicker"
DEPTH_STREAM = "depth@100ms"
STREAM_KINDS = (TRADE_STREAM, BOOK_TICKER_STREAM)
# Not a Binance stream: the replay source wraps a recording's REST depth snapshot line in a combined-stream
# envelope of this kind, naming the recording's symbol (the REST answer names none).
SNAPSHOT_STREAM = "depthSnapshot"
DEPTH_KINDS = (DEPTH_STREAM, SNAPSHOT_STREAM)


def stream_name(symbol: str, kind: str) -> str:
    return f"{symbol.lower()}@{kind}"


def symbol_streams(symbol: str, depth: bool = False) -> tuple[str, ...]:
    """The streams ingest subscribes for one symbol (they always share a connection)."""
    kinds = (*STREAM_KINDS, DEPTH_STREAM) if depth else STREAM_KINDS
    return tuple(stream_name(symbol, kind) for kind in kinds)


def streams_url(base_url: str, streams: list[str] | tuple[str, ...]) -> str:
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(streams)}"


def combined_stream_url(base_url: str, symbols: tuple[str, ...], depth: bool = False) -> str:
    return streams_url(base_url, [st for s in symbols for st in symbol_streams(s, depth)])


# Live subscription on an open connection (Binance's WebSocket limits, spot and Binance.US docs): requests
# `{"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":[streams],"id":N}` and `{"method":"LIST_SUBSCRIPTIONS","id":N}`;
# replies `{"result":null,"id":N}` (a list for LIST_SUBSCRIPTIONS) or `{"error":{"code":C,"msg":"..."},"id":N}`.
SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS = "SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"
WS_MAX_STREAMS = 1_024  # streams per connection; past it ingest opens another connection
WS_MAX_INCOMING_PER_S = 5  # messages a client may send per second (pings and pongs count); a 6th disconnects
# Our own pace, a token bucket: at most burst + rate x 1 s = 4 messages in any second, one below the limit so a
# pong to Binance's ping never makes it a 6th.
WS_SEND_RATE_PER_S = 3.0
WS_SEND_BURST = 1
# Ours, not Binance's: streams named in the connect URL (longer URLs are refused by some proxies; Binance
# documents no bound) and streams per SUBSCRIBE message; the rest of a connection's set goes by SUBSCRIBE.
WS_URL_MAX_STREAMS = 200
WS_PARAMS_PER_MESSAGE = 200
WS_REPLY_TIMEOUT_S = 10.0  # a request without a reply by then is counted as failed


# REST klines: path and weight of one request with limit=1000, per venue (USDⓈ-M weighs by limit: 500-1000 -> 5).
KLINES_PAGE_LIMIT = 1_000
KLINES_ENDPOINTS: dict[Venue, tuple[str, int]] = {
    Venue.BINANCE_SPOT: ("/api/v3/klines", 2),
    Venue.BINANCE_US: ("/api/v3/klines", 2),
    Venue.BINANCE_USDM: ("/fapi/v1/klines", 5),
}
# REST depth snapshots: path, limit and weight per venue (spot limit 5000 weighs 250; USD-M limit 1000 weighs 20).
DEPTH_ENDPOINTS: dict[Venue, tuple[str, int, int]] = {
    Venue.BINANCE_SPOT: ("/api/v3/depth", 5_000, 250),
    Venue.BINANCE_US: ("/api/v3/depth", 5_000, 250),
    Venue.BINANCE_USDM: ("/fapi/v1/depth", 1_000, 20),
}
# Binance counts request weight per IP per calendar minute and reports the running total in this header.
WEIGHT_HEADER = "x-mbx-used-weight-1m"
RATE_LIMITED = (418, 429)  # 429: too many requests; 418: banned after ignoring 429s. Both say Retry-After.


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max_s, base_s * 2^attempt)].

    One rule for the WebSocket reconnects and the REST retries (Binance asks clients to back off; jitter keeps
    many clients from retrying in step)."""
    return random.uniform(0, min(max_s, base_s * 2 ** min(attempt, 30)))
