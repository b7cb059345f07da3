from __future__ import annotations

import subprocess
import sys

import pytest

from qs_common import codec
from qs_common.models import BookTicker, Trade
from qs_common.settings import Settings, load_settings
from qs_common.venues.binance.config import Venue
from tests.conftest import ROOT


def as_redis(entry: dict[str, str | int]) -> dict[bytes, bytes]:
    return {k.encode(): str(v).encode() for k, v in entry.items()}


@pytest.mark.parametrize(
    "tick",
    [
        Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", 1723161255342, 1723161255343, 17, True),
        Trade("ETHUSDT", 1, "0.00000001", "5", 2, 3, 4, False),
        BookTicker("BTCUSDT", 50093239212, "61837.63", "3.78826", "61837.64", "1.54698", None, 99),
        BookTicker("BTCUSDT", 5, "1", "2", "3", "4", 1723161255343, 99),
    ],
)
def test_codec_round_trip(tick):
    assert codec.decode(as_redis(codec.encode(tick))) == tick


def test_codec_rejects_foreign_entries():
    with pytest.raises(codec.DecodeError):
        codec.decode({b"kind": b"depth", b"sym": b"X"})
    with pytest.raises(codec.DecodeError):
        codec.decode({b"kind": b"trade", b"sym": b"X"})


def test_defaults(monkeypatch):
    for var in ("SYMBOLS", "VENUE", "REDIS_URL", "DATA_DIR", "API_PORT", "PAIRS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.symbols == ("BTCUSDT", "ETHUSDT") and s.venue is Venue.BINANCE_SPOT
    assert s.redis_url == "redis://localhost:6379/0" and str(s.data_dir) == "data" and s.api_port == 8000
    assert s.ws_url == "wss://stream.binance.com:9443" and s.pair_legs() == [("ETHUSDT", "BTCUSDT")]


def test_lists_and_venues_from_env(monkeypatch):
    monkeypatch.setenv("SYMBOLS", " solusdt,BTCUSDT , ethusdt,solusdt")
    monkeypatch.setenv("PAIRS", "ethusdt/btcusdt, SOLUSDT/ETHUSDT")
    monkeypatch.setenv("VENUE", "binance-usdm")
    s = Settings()
    assert s.symbols == ("SOLUSDT", "BTCUSDT", "ETHUSDT")
    assert s.pairs == ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT")
    assert s.ws_url == "wss://fstream.binance.com" and s.rest_url == "https://fapi.binance.com"
    monkeypatch.setenv("BINANCE_WS_URL", "ws://127.0.0.1:9999/")
    assert Settings().ws_url == "ws://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("API_PORT", "eighty"), ("API_PORT", "70000"), ("SYMBOLS", "btc-usdt"), ("SYMBOLS", ","),
        ("VENUE", "kraken"), ("REDIS_URL", "localhost:6379"), ("PAIRS", "ETHUSDT"), ("LOG_LEVEL", "loud"),
        ("STREAM_MAXLEN", "10"), ("REPLAY_SPEED", "-1"), ("BINANCE_WS_URL", "stream.binance.com"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(var, value):
    env = {"PATH": "/usr/bin:/bin", var: value, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"invalid setting {var}:") or lines[0].startswith("invalid settings: PAIRS")


def test_default_pair_follows_the_symbols(monkeypatch):
    monkeypatch.delenv("PAIRS", raising=False)
    monkeypatch.setenv("SYMBOLS", "solusdt,bnbusdt,btcusdt")
    assert Settings().pairs == ("BNBUSDT/SOLUSDT",)
    monkeypatch.setenv("SYMBOLS", "btcusdt")
    assert Settings().pairs == ()


def test_pair_legs_must_be_configured_symbols():
    with pytest.raises(SystemExit):
        load_settings(symbols="BTCUSDT,ETHUSDT", pairs="SOLUSDT/BTCUSDT")


def test_packed_xadd_carries_exactly_the_encoded_fields():
    import hiredis

    tick = Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", 1723161255342, 1723161255343, 17, True)
    reader = hiredis.Reader()
    reader.feed(codec.pack_xadd(b"stream:ticks", tick))
    args = reader.gets()
    assert args[:3] == [b"XADD", b"stream:ticks", b"*"]
    fields = dict(zip(args[3::2], args[4::2], strict=True))
    assert codec.decode(fields) == tick


FLOAT_SETTINGS = [
    "REPLAY_SPEED", "SYNTHETIC_RATE", "STALE_FEED_S", "BACKOFF_MAX_S", "TRADE_RETENTION_H", "KALMAN_OBS_NOISE",
    "KALMAN_INIT_COV", "ADF_EVERY_S", "ANALYTICS_MAX_RATE", "REDIS_WAIT_S", "TICK_MAX_SKEW_S", "API_MAX_BODY_MB",
    "DEADLETTER_MAX_MB", "KLINE_CHECK_DELAY_S",
]


@pytest.mark.parametrize("var", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "Infinity"])
def test_non_finite_numbers_are_refused_naming_the_variable(monkeypatch, capsys, var, value):
    # `inf` used to be accepted for nine of these: an infinite wait or rate is a typo, never "no limit"
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as stop:
        load_settings()
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"invalid setting {var}:"), lines


@pytest.mark.parametrize(
    ("var", "value"),
    [("TICKS_STREAM", "  "), ("API_HOST", ""), ("DASHBOARD_HOST", " "), ("BATCH_RETRIES", "0"),
     ("REDIS_WAIT_S", "-1"), ("DEADLETTER_MAX_MB", "0"), ("WORKER_BATCH", "0")],
)
def test_empty_names_and_impossible_bounds_are_refused(monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit):
        load_settings()
    assert capsys.readouterr().err.startswith(f"invalid setting {var}:")


def test_batch_retries_and_redis_wait_defaults(monkeypatch):
    for var in ("BATCH_RETRIES", "REDIS_WAIT_S", "DEADLETTER_MAX_MB"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.batch_retries == 3 and s.redis_wait_s == 10 and s.deadletter_max_mb == 64


def test_the_candle_group_reads_larger_batches_unless_worker_batch_is_set(monkeypatch):
    monkeypatch.delenv("WORKER_BATCH", raising=False)
    s = Settings()
    assert (s.batch_for("candles"), s.batch_for("analytics"), s.batch_for("book")) == (20_000, 5_000, 5_000)
    monkeypatch.setenv("WORKER_BATCH", "5000")  # set, even to the default: every group reads that many
    s = Settings()
    assert (s.batch_for("candles"), s.batch_for("analytics")) == (5_000, 5_000)
