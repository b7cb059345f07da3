"""Tick files (issue 13, seam 7): the recorded BTCUSDT trades written as `timestamp,symbol,price,size` files go
through ingest and a real worker to Binance's own 1m klines, and a re-run of the same file adds nothing."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, python_module, service_env
from tests.integration.procs import WorkerProc, drained, status, wait_for
from tests.recordings import full_minutes, official_klines, trades

pytestmark = pytest.mark.integration

TRADES = trades(BTC_RECORDING)
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume")


def side(t: dict[str, Any]) -> str:
    return "sell" if t["m"] else "buy"  # m: the buyer was the maker, so the taker sold


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_csv(path: Path, with_ids: bool) -> None:
    # columns in another order than the documented one, ISO times: the header names them
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["symbol", "timestamp", "size", "price", "side", *(["trade_id"] if with_ids else [])])
    for t in TRADES:
        w.writerow([t["s"], iso(t["T"]), t["q"], t["p"], side(t), *([t["t"]] if with_ids else [])])
    path.write_text(out.getvalue())


def write_ndjson(path: Path, with_ids: bool, bad_rows: list[str]) -> None:
    # times in µs and prices as JSON numbers, as browser collectors write them (kept as exact text)
    lines = []
    for t in TRADES:
        row = f'{{"timestamp":{t["T"] * 1000},"symbol":"{t["s"]}","price":{t["p"]},"size":{t["q"]},' \
              f'"side":"{side(t).upper()}"' + (f',"trade_id":{t["t"]}' if with_ids else "") + "}"
        lines.append(row)
    for i, bad in enumerate(bad_rows):
        at = 100 + 50 * i  # in time order: the time of the trade before it
        lines.insert(at, bad.replace("TS", str(TRADES[at - 1 - i]["T"] * 1000)))
    path.write_text("\n".join(lines) + "\n")


def run_ticks(redis_url: str, files: list[Path], log: Path) -> None:
    args = python_module("ingest", "--source", "ticks", "--speed", "0")
    for f in files:
        args += ["--tick-file", str(f)]
    proc = subprocess.run(args, env=service_env(redis_url), capture_output=True, text=True, timeout=120)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr


def candles(worker: WorkerProc) -> dict[int, dict[str, str]]:
    rows = csv.DictReader(io.StringIO(worker.candles_csv("BTCUSDT")))
    return {int(r["open_time"]): r for r in rows}


def assert_full_minutes_equal_official(got: dict[int, dict[str, str]]) -> None:
    official = official_klines(BTC_KLINES_1M)
    minutes = full_minutes(TRADES)
    assert len(minutes) == 5
    for m in minutes:
        for name in FIELDS:
            assert got[m][name] == official[m][name], (m, name, got[m][name], official[m][name])
        assert int(got[m]["trades"]) == official[m]["trades"], m


@pytest.mark.parametrize("kind", ["csv-with-ids", "ndjson-derived-ids"])
def test_tick_file_gives_official_klines_and_a_rerun_adds_nothing(tmp_path, redis_server, kind):
    r = redis_server.client()
    path = tmp_path / ("ticks.csv" if kind.startswith("csv") else "ticks.ndjson")
    bad = [
        '{"timestamp":TS,"symbol":"BTCUSDT","price":"abc","size":"1","side":"buy"}',
        '{"timestamp":TS,"symbol":"BTCUSDT","price":"61000","size":"1","side":"hold"}',
        '{"timestamp":TS,"symbol":"BTCUSDT","price":"0","size":"1"}',
        '["not", "an", "object"]',
    ]
    if kind.startswith("csv"):
        write_csv(path, with_ids=True)
        bad = []
    else:
        write_ndjson(path, with_ids=False, bad_rows=bad)
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log")
    try:
        worker.wait_healthy()
        run_ticks(redis_server.url, [path], tmp_path / "ingest1.log")
        ingest = status(r, "ingest")
        assert ingest["state"] == "done" and ingest["source"] == "ticks", ingest
        assert ingest["published"] == len(TRADES) and ingest["dead_letters"] == len(bad), ingest
        wait_for(lambda: drained(r), 120, "worker to drain the stream")
        first = candles(worker)
        assert_full_minutes_equal_official(first)
        if bad:
            dead = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("stream:deadletter")]
            assert sorted(d["reason"].split(":")[0] for d in dead) == [
                f"ticks.ndjson line {101 + 50 * i}" for i in range(len(bad))]
            assert ingest["dead_letter_reasons"] == {"schema": 1, "bad-row": 2, "value-range": 1}, ingest
            assert any("side 'hold' is not buy or sell" in d["reason"] for d in dead)

        run_ticks(redis_server.url, [path], tmp_path / "ingest2.log")  # the same file again
        assert r.xlen("stream:ticks") == 2 * len(TRADES)
        wait_for(lambda: drained(r), 120, "worker to drain the re-run")
        again = candles(worker)
        assert again.keys() == first.keys()
        for open_time, row in first.items():  # exactly once: the same ids, nothing counted twice
            assert {k: again[open_time][k] for k in (*FIELDS, "trades")} == {k: row[k] for k in (*FIELDS, "trades")}
        assert sum(int(c["trades"]) for c in again.values()) == len(TRADES)
    finally:
        assert worker.stop() == 0, worker.log()


def test_missing_tick_file_stops_ingest_with_one_line(tmp_path, redis_server):
    args = python_module("ingest", "--source", "ticks", "--tick-file", str(tmp_path / "nope.csv"))
    proc = subprocess.run(args, env=service_env(redis_server.url), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "tick file not found" in proc.stderr and "Traceback" not in proc.stderr
