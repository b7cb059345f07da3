"""Partitioning by key (issue 14): which shard owns a symbol or a pair, and the Redis Cluster hash tags.

A stateful stream processor must see every event of a key, so keys are assigned to shards the way Kafka assigns
keys to partitions: by a stable hash. The hash is CRC-32 (IEEE 802.3, `zlib.crc32`) of the key's UTF-8 bytes,
modulo the shard count N:

    shard(symbol) = crc32(symbol) mod N          candle workers (`SHARD=k/N`, `--role candles`)
    shard(pair)   = crc32("Y/X") mod N           analytics workers (`SHARD=k/M`, `--role analytics`)

CRC-32 is fixed by a standard, cheap, and the same in every language and Python release (Python's own `hash` of a
str is salted per process and would move every key on each restart). A resize from N to N' moves the keys whose
residue changes; their new owner warms them from recent history.

Redis Cluster places a key by the CRC16 of its hash tag (the text between the first `{` and `}`), so every key
named with `tag(symbol)` lives on the same node as the symbol's tick stream.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_SHARD = re.compile(r"(\d{1,4})/(\d{1,4})")
MAX_SHARDS = 1024


def stable_hash(key: str) -> int:
    """CRC-32 of the key's UTF-8 bytes (unsigned): the one hash every shard assignment uses."""
    return zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF


def shard_of(key: str, n: int) -> int:
    if n < 1:
        raise ValueError(f"shard count must be >= 1, got {n}")
    return stable_hash(key) % n


@dataclass(frozen=True)
class ShardSpec:
    """`k/N`: this process is shard k (from 0) of N. `ShardSpec(0, 1)` owns everything (the default)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"shard count must be 1..{MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be 0..{self.count - 1}, got {self.index}")

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """`"k/N"` -> ShardSpec; ValueError with the expected form otherwise."""
        m = _SHARD.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"{text[:40]!r} is not a shard; write k/N with k from 0, like 0/2")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, key: str) -> bool:
        return self.whole or shard_of(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def tag(symbol: str) -> str:
    """The Redis Cluster hash tag of a symbol: keys that embed it share the symbol's slot."""
    return "{" + symbol + "}"
