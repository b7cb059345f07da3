"""Shard assignment: a stable, documented hash (CRC-32 mod N), checked against an independent CRC-32."""

from __future__ import annotations

import pytest

from qs_common.partition import ShardSpec, shard_of, stable_hash, tag
from qs_common.settings import load_settings


def _crc32(data: bytes) -> int:
    """Plain bitwise CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the reference for zlib's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize("key", ["BTCUSDT", "ETHUSDT", "ETHUSDT/BTCUSDT", "SOLUSDT", "1000SHIBUSDT"])
def test_hash_is_crc32_of_utf8(key: str) -> None:
    assert stable_hash(key) == _crc32(key.encode())
    for n in (1, 2, 3, 4, 7):
        assert shard_of(key, n) == _crc32(key.encode()) % n


def test_known_value() -> None:
    # The check value of CRC-32 (the standard's test vector): pins the hash against a silent change of algorithm.
    assert stable_hash("123456789") == 0xCBF43926


def test_shards_partition_every_key_once() -> None:
    keys = [f"SYM{i}USDT" for i in range(500)]
    for n in (1, 2, 4):
        owners = [[k for k in keys if ShardSpec(i, n).owns(k)] for i in range(n)]
        assert sorted(sum(owners, [])) == sorted(keys)  # disjoint and complete
        if n > 1:
            assert all(len(o) > 500 / n / 2 for o in owners)  # none starved


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/2", "0/0", "a/b", "0/2/3", "0/5000"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ShardSpec.parse(text)


def test_parse_and_print() -> None:
    assert ShardSpec.parse(" 1/4 ") == ShardSpec(1, 4)
    assert str(ShardSpec.parse("0/1")) == "0/1" and ShardSpec().whole
    assert tag("BTCUSDT") == "{BTCUSDT}"


def test_bad_shard_setting_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(shard="3/2")
    assert "SHARD" in capsys.readouterr().err
