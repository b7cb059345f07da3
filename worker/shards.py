"""The candle shards' registry in Redis (issue 14): who owns which symbols, and where its history API answers.

Each candle worker run with `SHARD=k/N` (N > 1) owns the active symbols with crc32(symbol) mod N = k
(qs_common/partition.py) and writes, every second with its status record, one field of the hash `shards:candles`:

    "k/N" -> {"shard": "k/N", "address": API_ADVERTISE_URL, "symbols": [...], "heartbeat_ms": ms UTC}

Any shard's API finds a symbol's owner here and forwards the request to it (worker/api_forward.py). An entry whose
heartbeat is older than `STALE_MS` belongs to a worker that stopped or died: it is not an owner until it beats
again (a restarted shard, or its replacement with the same k/N, overwrites the field). A field of another shard
count (a resize in progress) is ignored for the expected owner, but still found through its symbols list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from qs_common import control, keys
from qs_common.partition import ShardSpec, shard_of
from qs_common.status import now_ms

log = logging.getLogger(__name__)

STALE_MS = 10_000  # as a status record's TTL: three missed beats are not yet a dead shard, ten are


class OwnerUnavailable(LookupError):
    """The shard that owns the symbol is not registered (not started, or stopped beating): the API's 503."""

    def __init__(self, symbol: str, shard: str) -> None:
        super().__init__(f"{symbol} belongs to candle shard {shard}, which is not registered in "
                         f"{keys.SHARDS_CANDLES} (not running, or no heartbeat for {STALE_MS // 1000} s)")
        self.shard = shard


@dataclass(frozen=True)
class ShardEntry:
    shard: str
    address: str
    symbols: tuple[str, ...]
    heartbeat_ms: int

    def fresh(self, now: int) -> bool:
        return now - self.heartbeat_ms <= STALE_MS


def owned_symbols(spec: ShardSpec, active: Iterable[str]) -> tuple[str, ...]:
    """The active symbols this shard owns, sorted."""
    return tuple(sorted(s for s in active if spec.owns(s)))


def _entry(raw: Any) -> ShardEntry | None:
    try:
        doc = json.loads(raw)
        return ShardEntry(str(doc["shard"]), str(doc["address"]), tuple(str(s) for s in doc["symbols"]),
                          int(doc["heartbeat_ms"]))
    except (ValueError, KeyError, TypeError):  # written by hand or by another version: not an owner
        return None


class ShardRegistry:
    """This candle shard's registration, and the lookup of the others'."""

    def __init__(self, r: redis.Redis, spec: ShardSpec, address: str) -> None:
        self.r = r
        self.spec = spec
        self.address = address.rstrip("/")

    def beat(self, symbols: Iterable[str]) -> None:
        """Register (or refresh) this shard with the symbols it owns now."""
        body = {"shard": str(self.spec), "address": self.address, "symbols": sorted(symbols),
                "heartbeat_ms": now_ms()}
        self.r.hset(keys.SHARDS_CANDLES, str(self.spec), json.dumps(body))

    def leave(self) -> None:
        """On a clean stop: the other shards answer 503 for its symbols at once instead of timing out."""
        self.r.hdel(keys.SHARDS_CANDLES, str(self.spec))

    def entries(self) -> dict[str, ShardEntry]:
        """Every registered shard with a fresh heartbeat, by `k/N`."""
        now = now_ms()
        out = {}
        raw: dict[bytes, bytes] = self.r.hgetall(keys.SHARDS_CANDLES)  # type: ignore[assignment]
        for field, value in raw.items():
            entry = _entry(value)
            if entry is not None and entry.fresh(now):
                out[field.decode() if isinstance(field, bytes) else str(field)] = entry
        return out

    def owns(self, symbol: str) -> bool:
        return self.spec.owns(symbol)

    def owner(self, symbol: str) -> ShardEntry:
        """The fresh registration of the shard that owns `symbol` (crc32 mod this shard's N; during a resize, a
        shard of another N that lists it); OwnerUnavailable naming the shard otherwise."""
        expected = f"{shard_of(symbol, self.spec.count)}/{self.spec.count}"
        entries = self.entries()
        if expected in entries:
            return entries[expected]
        for entry in entries.values():
            if symbol in entry.symbols:
                return entry
        raise OwnerUnavailable(symbol, expected)

    def others(self) -> list[ShardEntry]:
        """The other registered shards (for answers over every symbol, such as /symbols)."""
        return [e for k, e in sorted(self.entries().items()) if k != str(self.spec)]


class OwnedSymbols:
    """The active symbols (the control registry, polled at most once a second) this shard owns."""

    def __init__(self, r: redis.Redis, spec: ShardSpec) -> None:
        self.watcher = control.Watcher(r)
        self.spec = spec
        self.symbols: tuple[str, ...] = ()

    def refresh(self) -> tuple[str, ...]:
        """Reread the registry if its version moved; the owned symbols."""
        polled = self.watcher.poll()
        if polled is not None:
            owned = owned_symbols(self.spec, polled[0])
            if owned != self.symbols:
                log.info("shard %s owns %d symbol(s): %s", self.spec, len(owned), ", ".join(owned))
            self.symbols = owned
        return self.symbols
