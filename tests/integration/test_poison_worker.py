"""The real worker process: poison trades quarantined end to end, a full disk under DuckDB retried, prompt SIGTERM."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import threading
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import free_port, python_module, service_env
from tests.integration.procs import WorkerProc, drained, status, wait_for
from tests.integration.test_poison import (
    DEAD,
    GOOD,
    POISON,
    RECV,
    STREAM,
    T0,
    assert_equal_reference,
    entry,
    publish,
)
from worker.consumer import GroupConsumer

pytestmark = pytest.mark.integration


def api_candles(api: str, symbol: str) -> dict[int, dict[str, Any]]:
    resp = httpx.get(f"{api}/candles", params={"symbol": symbol, "interval": "1m", "limit": "10000"}, timeout=30)
    resp.raise_for_status()
    return {c["open_time"]: c for c in resp.json()["candles"]}


def assert_api_candles_equal_reference(api: str, good: list[dict[str, Any]]) -> None:
    assert_equal_reference(lambda symbol: api_candles(api, symbol), good)


def sources(r: redis.Redis) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    entries: Any = r.xrange(DEAD)
    for _, f in entries:
        out.setdefault(f[b"source"].decode(), set()).add(f[b"entry_id"].decode())
    return out


def test_worker_quarantines_poison_trades_and_builds_every_other_candle(tmp_path, redis_server, r):
    rows: list[tuple[dict[str, Any], str]] = [(entry(t), "") for t in GOOD]
    # which group cannot use it: the candle store none of them; the analytics engines those without a sane time
    # or price (a 2^70 id or a huge p·q does not disturb a rolling regression)
    usable_by_analytics = {0, 2}
    for i, bad in enumerate(POISON):
        rows.insert(15 + 45 * i, (entry(bad), "candles" if i in usable_by_analytics else "both"))
    not_utf8 = {"sym": b"\xff\xfeUSDT", "kind": "trade", "ts": T0, "ev": T0, "recv": RECV, "id": 7, "p": "1",
                "q": "1", "m": "0"}
    rows.insert(90, (not_utf8, "both"))
    ids = publish(r, [fields for fields, _ in rows])
    for_candles = {eid.decode() for eid, (_, who) in zip(ids, rows, strict=True) if who}
    for_analytics = {eid.decode() for eid, (_, who) in zip(ids, rows, strict=True) if who == "both"}

    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log", SYMBOLS="BTCUSDT,ETHUSDT")
    worker.wait_healthy()
    # the old consumer retried the first batch forever: nothing drained, no candle, pending piled up
    wait_for(lambda: drained(r), 60, "both groups to acknowledge every entry")
    wait_for(lambda: status(r, "worker-candles").get("quarantined") == len(for_candles), 10, "candles status")
    wait_for(lambda: status(r, "worker-analytics").get("quarantined") == len(for_analytics), 10, "analytics status")
    assert status(r, "worker-candles")["last_quarantine"]
    assert sources(r) == {"worker-candles": for_candles, "worker-analytics": for_analytics}
    assert_api_candles_equal_reference(worker.api, GOOD)
    log = worker.log()
    assert sum("quarantined entry" in line for line in log.splitlines()) == len(for_candles) + len(for_analytics)
    # SIGTERM: drained and stopped within the bound (the old worker waited 60 s for a consumer stuck retrying)
    assert worker.stop(timeout=20) == 0, worker.log()


def _drain_output(proc: subprocess.Popen[bytes], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_a_full_disk_under_duckdb_is_retried_never_dead_lettered(tmp_path, redis_server, r):
    """RLIMIT_FSIZE on the running worker: every DuckDB write fails with EFBIG ("File too large"), as on a full
    disk. The batch must wait for the disk, not be bisected or dead-lettered; then every trade is stored once."""
    port = free_port()
    env = service_env(redis_server.url, tmp_path / "data", API_PORT=str(port), SYMBOLS="BTCUSDT,ETHUSDT")
    # output to a pipe: the file-size limit must hit DuckDB only, not the worker's log
    proc = subprocess.Popen(python_module("worker", "--role", "candles"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = _drain_output(proc, lines)
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 60, "worker /health")
        publish(r, [entry(t) for t in GOOD[:50]])
        wait_for(lambda: drained(r, groups=("candles",)), 60, "the first trades")
        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, hard))  # Python ignores SIGXFSZ: writes get EFBIG
        publish(r, [entry(t) for t in GOOD[50:]])

        def failing() -> bool:
            s = status(r, "worker-candles")
            return s.get("state") == "retrying" and s.get("failed_batches", 0) > 4  # past BATCH_RETRIES=3
        wait_for(failing, 60, "the candle batch to fail on the full disk")
        s = status(r, "worker-candles")
        assert "File too large" in s["last_error"], s
        assert r.xlen(DEAD) == 0 and s["quarantined"] == 0 and r.xpending(STREAM, "candles")["pending"] > 0
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))  # room again
        wait_for(lambda: drained(r, groups=("candles",)), 60, "the batch to pass once the disk has room")
        assert r.xlen(DEAD) == 0 and status(r, "worker-candles")["quarantined"] == 0
        assert_api_candles_equal_reference(api, GOOD)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        (tmp_path / "worker.log").write_text("".join(lines))
    assert "Traceback" not in "".join(lines)


def test_the_dead_letter_raw_is_json_of_the_entry(r, tmp_path):
    """What an operator reads to replay an entry: every field, bytes that are not UTF-8 escaped, never lost."""
    publish(r, [{"sym": b"\xffX", "kind": "trade", "p": "1"}])  # type: ignore[dict-item]
    r.xgroup_create(STREAM, "g", id="0")
    consumer = GroupConsumer(r, STREAM, "g", "c", lambda entries: [(eid, "refused") for eid, _ in entries])
    consumer._read(">")
    consumer._own_pending()
    ((_, f),) = r.xrange(DEAD)
    assert json.loads(f[b"raw"]) == {"sym": "\\xffX", "kind": "trade", "p": "1"}
    assert f[b"reason"] == b"refused" and f[b"source"] == b"worker-g" and int(f[b"recv"]) > 0
    assert r.xpending(STREAM, "g")["pending"] == 0 and consumer.stats.quarantined == 1
