"""ingest's live Binance source against a local server speaking Binance's combined-stream protocol."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BTC_RECORDING, ETH_RECORDING, python_module, service_env
from tests.integration.binance_ws import RECORDED_SKEW_ENV, BinanceWsServer, Script
from tests.integration.procs import Proc, WorkerProc, drained, status, wait_for
from tests.recordings import trades

pytestmark = pytest.mark.integration

TOTAL_TICKS = 9757 + 28040 + 6106 + 24077


def start_ingest(redis_url: str, ws: BinanceWsServer, log, **env: str) -> Proc:
    return Proc(
        python_module("ingest"),
        service_env(redis_url, **({"SOURCE": "binance", "BINANCE_WS_URL": ws.url, "SYMBOLS": "btcusdt,ethusdt"}
                                   | RECORDED_SKEW_ENV | env)),
        log,
    )


def test_live_feed_to_exact_candles(tmp_path, redis_server):
    r = redis_server.client()
    ws = BinanceWsServer([BTC_RECORDING, ETH_RECORDING]).start()
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log")
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest.log")
    try:
        wait_for(lambda: r.exists("stream:ticks") and r.xlen("stream:ticks") == TOTAL_TICKS, 90, "all ticks")
        worker.wait_healthy()
        wait_for(lambda: drained(r), 90, "worker to drain")
        # (later connections are the stale-feed watchdog at work once the recording has run out)
        assert ws.connections[0] == "/stream?streams=btcusdt@trade/btcusdt@bookTicker/ethusdt@trade/ethusdt@bookTicker"
        st = wait_for(lambda: status(r, "ingest") if status(r, "ingest").get("published") == TOTAL_TICKS else None,
                      10, "ingest status")
        assert st["dead_letters"] == 0 and st["state"] in ("connected", "reconnecting")
        csv_text = worker.candles_csv("BTCUSDT")
        assert "1723161300000,61828.00000000,61860.80000000,61780.00000000,61782.25000000,15.07702000" in csv_text
    finally:
        assert ingest.stop() == 0, ingest.log()
        assert worker.stop() == 0, worker.log()
        ws.stop()
    assert "connected" in ingest.log()


def test_drop_and_withheld_frames_are_recorded_as_a_gap(tmp_path, redis_server):
    r = redis_server.client()
    ws = BinanceWsServer([BTC_RECORDING, ETH_RECORDING], Script(drop_after=[20_000], withhold=15_000)).start()
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest.log")
    try:
        wait_for(lambda: ws.done.is_set(), 90, "the server to play everything")
        wait_for(lambda: status(r, "ingest").get("gaps", 0) >= 2, 30, "gaps recorded")
    finally:
        assert ingest.stop() == 0
        ws.stop()
    assert len(ws.connections) == 2
    # the gap of each symbol runs from its last trade before the drop to its first trade after it
    before = ws.frames[: ws.drop_positions[0]]
    sent_before = [json.loads(text)["data"] for stream, text in before if stream.endswith("@trade")]
    gaps = {g[b"symbols"].decode(): g for _, g in r.xrange("stream:gaps")}
    assert set(gaps) == {"BTCUSDT", "ETHUSDT"}
    for symbol, recording in (("BTCUSDT", BTC_RECORDING), ("ETHUSDT", ETH_RECORDING)):
        last_before = max(t["T"] for t in sent_before if t["s"] == symbol)
        stored_ids = {int(f[b"id"]) for _, f in r.xrange("stream:ticks") if f[b"kind"] == b"trade"
                      and f[b"sym"].decode() == symbol}
        first_after = min(t["T"] for t in trades(recording) if t["t"] in stored_ids and t["T"] > last_before)
        assert int(gaps[symbol][b"start_ms"]) == last_before
        assert int(gaps[symbol][b"end_ms"]) == first_after
        assert b"connection closed" in gaps[symbol][b"reason"]
    assert "reconnecting" in ingest.log() and "gap recorded" in ingest.log()


def test_stale_feed_and_server_shutdown_make_it_reconnect(tmp_path, redis_server):
    r = redis_server.client()
    ws = BinanceWsServer([BTC_RECORDING], Script(silent_after=3_000, shutdown_after=6_000)).start()
    ingest = start_ingest(redis_server.url, ws, tmp_path / "ingest.log", STALE_FEED_S="1", SYMBOLS="btcusdt")
    try:
        wait_for(lambda: len(ws.connections) >= 3, 60, "two reconnects")
        wait_for(lambda: "reconnecting: venue announced serverShutdown" in ingest.log(), 10, "shutdown reconnect")
        assert "reconnecting: stale feed: no frame for 1 s" in ingest.log()
        assert "venue control event: serverShutdown" in ingest.log()
        # the status record is written once a second: the shutdown can be handled before the next one
        wait_for(lambda: int(status(r, "ingest").get("published", 0)) >= 6_000, 10, "6,000 ticks published")
    finally:
        assert ingest.stop() == 0
        ws.stop()
