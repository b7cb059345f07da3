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


def combined_stream_url(base_url: str, symbols: tuple[str, ...], depth: bool = False) -> str:
    kinds = (*STREAM_KINDS, DEPTH_STREAM) if depth else STREAM_KINDS
    streams = "/".join(stream_name(s, kind) for s in symbols for kind in kinds)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"


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
