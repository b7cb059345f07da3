"""Partitioned-mode names (issue 14): per-symbol tick streams with the symbol's hash tag, shard groups and status
names, and the TICK_PARTITIONING setting (forced on by REDIS_CLUSTER)."""

from __future__ import annotations

import binascii

import pytest

from qs_common import keys
from qs_common.partition import tag
from qs_common.settings import load_settings


def _key_slot(key: str) -> int:
    """Redis Cluster's slot of a key (its spec: CRC16-XMODEM of the hash tag, or of the key without one, mod 16384),
    written from the spec with binascii's CRC-CCITT (XMODEM: initial value 0) as the independent CRC."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return binascii.crc_hqx(key.encode(), 0) % 16384


def test_tick_stream_names() -> None:
    assert keys.tick_stream("stream:ticks", "BTCUSDT") == "stream:ticks:{BTCUSDT}"
    assert keys.tick_stream("custom", "ETHUSDT") == "custom:{ETHUSDT}"
    assert keys.tick_stream_for("stream:ticks", "BTCUSDT", partitioned=False) == "stream:ticks"
    assert keys.tick_stream_for("stream:ticks", "BTCUSDT", partitioned=True) == "stream:ticks:{BTCUSDT}"


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "1000SHIBUSDT"])
def test_stream_name_round_trips(symbol: str) -> None:
    assert keys.tick_stream_symbol("stream:ticks", keys.tick_stream("stream:ticks", symbol)) == symbol


@pytest.mark.parametrize("name", ["stream:ticks", "stream:ticks:{}", "stream:ticks:BTCUSDT", "other:{BTCUSDT}",
                                  "stream:deadletter", "stream:ticks:{BTCUSDT"])
def test_other_names_have_no_symbol(name: str) -> None:
    assert keys.tick_stream_symbol("stream:ticks", name) is None


def test_a_symbols_stream_shares_its_slot_with_its_tag() -> None:
    # the point of the hash tag: every key named with tag(symbol) lives on the node of the symbol's stream
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert _key_slot(keys.tick_stream("stream:ticks", symbol)) == _key_slot(tag(symbol)) == _key_slot(symbol)
    assert _key_slot("stream:ticks:{BTCUSDT}") != _key_slot("stream:ticks:{ETHUSDT}")


def test_key_slot_reference() -> None:
    # the cluster spec's own example: the slot of "123456789" is CRC16 0x31C3 mod 16384
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3


def test_shard_names() -> None:
    assert keys.analytics_group(0, 2) == "analytics-0of2"
    assert keys.candles_shard_status(1, 4) == "worker-candles-1of4"
    assert keys.shard_label(3, 4) == "3of4"


def test_pattern_matches_only_partitioned_streams() -> None:
    import fnmatch

    pattern = keys.tick_streams_pattern("stream:ticks")
    assert fnmatch.fnmatchcase("stream:ticks:{BTCUSDT}", pattern)
    assert not fnmatch.fnmatchcase("stream:ticks", pattern)
    assert fnmatch.fnmatchcase("analytics-0of2", keys.ANALYTICS_GROUP_PATTERN)
    assert not fnmatch.fnmatchcase("analytics", keys.ANALYTICS_GROUP_PATTERN)


def test_partitioning_setting() -> None:
    assert not load_settings().partitioned and load_settings().tick_partitioning == "single"
    assert load_settings(tick_partitioning="symbol").partitioned
    assert load_settings(redis_cluster=True).partitioned  # forced on with a cluster
    assert load_settings(redis_cluster=True, tick_partitioning="symbol").partitioned


@pytest.mark.parametrize("env", [{"tick_partitioning": "hash"}, {"tick_partitioning": "single", "redis_cluster": True}])
def test_bad_partitioning_names_the_variable(env: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(**env)
    assert "TICK_PARTITIONING" in capsys.readouterr().err
