"""Exactly-once candles by trade-id runs (issue 12), end to end with real processes: the same trades delivered with
duplicates, a worker SIGKILLed mid-batch and restarted, an older file replayed after newer data (ids below the
newest, never stored before) and a tick file with derived ids replayed twice; the stored candles of every stored
interval equal a plain-Decimal computation over each distinct trade once."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from qs_common import codec
from qs_common.intervals import STORED_MS
from qs_common.models import Trade
from tests.conftest import BTC_RECORDING, ETH_RECORDING, python_module, service_env
from tests.integration.procs import WorkerProc, drained, wait_for
from tests.recordings import reference_candles, trades
from worker.store import CandleStore

pytestmark = pytest.mark.integration

STREAM = "stream:ticks"
EIGHT = Decimal("1e-8")
BTC, ETH = trades(BTC_RECORDING), trades(ETH_RECORDING)
DERIVED = "SOLUSDT"  # ETH's trades again under another symbol, from a file without ids (ids derived from times)


def xadd_trades(r: redis.Redis, rows: list[dict[str, Any]]) -> None:
    pipe = r.pipeline(transaction=False)
    for t in rows:
        fields = codec.encode(Trade(t["s"], t["t"], t["p"], t["q"], t["T"], t["E"], t["T"] * 1_000_000, t["m"]))
        pipe.xadd(STREAM, fields)  # type: ignore[arg-type]
    pipe.execute()


def write_ticks(path: Path, rows: list[dict[str, Any]], symbol: str | None = None, ids: bool = True) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "symbol", "price", "size", "side", *(["trade_id"] if ids else [])])
        for t in rows:
            w.writerow([t["T"], symbol or t["s"], t["p"], t["q"], "sell" if t["m"] else "buy",
                        *([t["t"]] if ids else [])])


def run_ticks(redis_url: str, path: Path) -> None:
    proc = subprocess.run(python_module("ingest", "--source", "ticks", "--speed", "0", "--tick-file", str(path)),
                          env=service_env(redis_url, SYMBOLS=f"BTCUSDT,ETHUSDT,{DERIVED}"), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def acked(r: redis.Redis) -> int:
    g = next(g for g in r.xinfo_groups(STREAM) if g["name"] == b"candles")
    return int(g["entries-read"] or 0) - int(g["pending"])


def start_worker(url: str, tmp: Path, n: int) -> WorkerProc:
    # small batches: many commits, so a kill lands between a batch's commit and its acknowledgement or inside it
    return WorkerProc(url, tmp / "data", tmp / f"worker{n}.log", WORKER_BATCH="150", WORKER_BLOCK_MS="50")


def kill_mid_stream(r: redis.Redis, worker: WorkerProc, total: int, frac: float) -> int:
    start = acked(r)
    wait_for(lambda: acked(r) >= start + (total - start) * frac, 180, f"{frac:.0%} of the entries acknowledged")
    worker.stop(signal.SIGKILL, timeout=10)
    done = acked(r)
    assert done < total, "the worker finished before the kill: nothing was tested"
    return done


def assert_candles_equal_reference(db: Path, distinct: list[dict[str, Any]]) -> None:
    store = CandleStore(db)
    try:
        for symbol in sorted({t["s"] for t in distinct}):
            mine = [t for t in distinct if t["s"] == symbol]
            for interval, ms in STORED_MS.items():
                want = reference_candles(mine, ms)
                got = {row["open_time"]: row for row in store.candles(symbol, interval, None, None, 10**6).to_dicts()}
                assert set(got) == set(want), (symbol, interval)
                for open_time, w in want.items():
                    g = got[open_time]
                    for name in ("open", "high", "low", "close", "volume", "taker_buy_volume"):
                        assert Decimal(g[name]) == w[name], (symbol, interval, open_time, name)
                    assert Decimal(g["quote_volume"]) == w["quote_volume"].quantize(EIGHT, ROUND_HALF_UP)
                    assert g["trades"] == w["trades"], (symbol, interval, open_time)
    finally:
        store.close()


def test_candles_stay_exact_under_duplicates_kills_restarts_and_older_replays(tmp_path, redis_server):
    r = redis_server.client()
    rng = random.Random(12)
    old_btc, new_btc = BTC[: len(BTC) // 3], BTC[len(BTC) // 3:]
    r.xgroup_create(STREAM, "candles", id="0", mkstream=True)

    # 1. newer data first, with redelivered duplicates (the same trade in several entries), then a SIGKILL mid-way
    live = new_btc + ETH
    dupes = rng.sample(live, 800)
    xadd_trades(r, sorted(live + dupes, key=lambda t: (t["T"], t["s"])))
    total = r.xlen(STREAM)
    worker = start_worker(redis_server.url, tmp_path, 1)
    kill_mid_stream(r, worker, total, 0.4)
    # 2. restart: pending entries of the killed consumer are read again (their batch may be committed already)
    worker = start_worker(redis_server.url, tmp_path, 2)
    wait_for(lambda: drained(r, groups=("candles",)), 240, "the restarted worker to drain")
    # 3. an OLDER file after the newer data: ids below every stored id, never stored (plus an overlap that was),
    #    with another SIGKILL while it is read
    older = tmp_path / "older.csv"
    write_ticks(older, old_btc + new_btc[:500])
    run_ticks(redis_server.url, older)
    total = r.xlen(STREAM)
    kill_mid_stream(r, worker, total, 0.3)
    worker = start_worker(redis_server.url, tmp_path, 3)
    wait_for(lambda: drained(r, groups=("candles",)), 240, "the worker to drain the older file")
    # 4. a tick file without ids (derived from times), replayed twice
    derived = tmp_path / "derived.csv"
    write_ticks(derived, ETH, symbol=DERIVED, ids=False)
    run_ticks(redis_server.url, derived)
    run_ticks(redis_server.url, derived)
    wait_for(lambda: drained(r, groups=("candles",)), 240, "the worker to drain the derived-id file")
    assert worker.stop() == 0, worker.log()

    assert r.xlen("stream:deadletter") == 0
    distinct = BTC + ETH + [{**t, "s": DERIVED} for t in ETH]
    assert_candles_equal_reference(tmp_path / "data" / "market_data.duckdb", distinct)
