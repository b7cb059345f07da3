"""Binance (spot, USDⓈ-M futures, Binance.US) in one place, the way cryptofeed and nautilus_trader keep a venue.

- `config`: the venues, their WebSocket and REST URLs, stream names, REST endpoints, weights and limits, and the
  reconnect/retry backoff.
- `wire`: the payloads as Binance sends them (Pydantic, Binance's one-letter names kept at this edge) and their
  conversion into the domain ticks, depth diffs and snapshots of `qs_common.models` / `qs_common.depth`.
- `klines`: the kline row layout (REST and data.binance.vision files) and which intervals each venue has.
- `exchange_info`: which symbols exist and trade (`exchangeInfo`), for checking a symbol added at runtime.

Transport stays outside: the WebSocket client (`ingest/sources/binance.py`) owns connection, reconnects and
limits and passes raw bytes on; the REST client (`worker/backfill/client.py`) owns HTTP.
"""
