"""Acceptance: the recordings through ingest and worker give Binance's own 1m klines, also across a SIGKILL."""

from __future__ import annotations

import csv
import io
import signal

import pytest

from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, ETH_RECORDING
from tests.integration.procs import WorkerProc, drained, run_replay, status, wait_for
from tests.recordings import full_minutes, official_klines, trades

pytestmark = pytest.mark.integration

HEADER = "open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume"


def assert_full_minutes_equal_official(csv_text: str) -> int:
    assert csv_text.startswith(HEADER)
    rows = {int(r["open_time"]): r for r in csv.DictReader(io.StringIO(csv_text))}
    official = official_klines(BTC_KLINES_1M)
    minutes = full_minutes(trades(BTC_RECORDING))
    for m in minutes:
        got, want = rows[m], official[m]
        for field in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"):
            assert got[field] == want[field], (m, field, got[field], want[field])
        assert int(got["trades"]) == want["trades"], m
    return len(minutes)


def test_replay_gives_official_klines(tmp_path, redis_server):
    r = redis_server.client()
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log")
    try:
        worker.wait_healthy()
        run_replay(redis_server.url, [BTC_RECORDING, ETH_RECORDING], tmp_path / "ingest.log")
        ingest = status(r, "ingest")  # read now: a status record expires 10 s after its process stops
        wait_for(lambda: drained(r), 120, "worker to drain the stream")
        assert assert_full_minutes_equal_official(worker.candles_csv("BTCUSDT")) == 5
        assert ingest["state"] == "done" and ingest["dead_letters"] == 0
        assert ingest["published"] == r.xlen("stream:ticks") == 9757 + 28040 + 6106 + 24077
        assert ingest["skipped"] == 3451 + 3434 + 2  # depth diffs and the two REST snapshots
        eth = worker.candles_csv("ETHUSDT")
        assert len(eth.splitlines()) == 1 + 7
        analytics = r.xrevrange("stream:analytics", count=1)[0][1]
        assert analytics[b"pair"] == b"ETHUSDT/BTCUSDT" and b"zscore" in analytics
    finally:
        assert worker.stop() == 0, worker.log()
    assert "draining" in worker.log() and "stopped" in worker.log()


def test_sigkill_mid_replay_then_restart_keeps_candles_exact(tmp_path, redis_server):
    r = redis_server.client()
    data = tmp_path / "data"
    # small batches so the kill lands mid-stream, with entries delivered but not yet acknowledged
    env = {"WORKER_BATCH": "200", "CONSUMER_NAME": "w1"}
    worker = WorkerProc(redis_server.url, data, tmp_path / "worker1.log", **env)
    worker.wait_healthy()
    run_replay(redis_server.url, [BTC_RECORDING, ETH_RECORDING], tmp_path / "ingest.log")
    wait_for(lambda: status(r, "worker-candles").get("entries", 0) > 15_000, 60, "the worker to be mid-stream")
    worker.stop(signal.SIGKILL)
    progress = {g["name"].decode(): g for g in r.xinfo_groups("stream:ticks")}
    assert progress["candles"]["lag"] > 0 or progress["candles"]["pending"] > 0, "the kill came too late"

    restarted = WorkerProc(redis_server.url, data, tmp_path / "worker2.log", **env)
    try:
        restarted.wait_healthy()
        wait_for(lambda: drained(r), 120, "restarted worker to drain the stream")
        assert assert_full_minutes_equal_official(restarted.candles_csv("BTCUSDT")) == 5
    finally:
        assert restarted.stop() == 0
    if progress["candles"]["pending"]:
        assert f"candles: re-reading {progress['candles']['pending']} pending entries" in restarted.log()
