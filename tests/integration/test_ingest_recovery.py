"""Live ingest records what it could not see: its own downtime (SIGKILL or a clean stop) and a Redis that lost
acknowledged writes (SIGKILL plus its AOF cut back, as an OS crash under appendfsync everysec leaves it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from ingest.rewind import parse_id
from tests.conftest import (
    BTC_RECORDING,
    ETH_RECORDING,
    python_module,
    restart_redis,
    service_env,
    start_redis,
)
from tests.integration.binance_ws import RECORDED_SKEW_ENV, BinanceWsServer, Script
from tests.integration.procs import Proc, status, wait_for

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def start_ingest(redis_url: str, ws: BinanceWsServer, log: Path) -> Proc:
    env = service_env(redis_url, SOURCE="binance", BINANCE_WS_URL=ws.url, SYMBOLS="btcusdt,ethusdt",
                      **RECORDED_SKEW_ENV)
    return Proc(python_module("ingest"), env, log)


def stream_trades(r: redis.Redis) -> list[tuple[bytes, str, int, int]]:
    """(entry id, symbol, trade id, trade ms) of every trade in the tick stream, in stream order."""
    return [(eid, f[b"sym"].decode(), int(f[b"id"]), int(f[b"ts"])) for eid, f in r.xrange("stream:ticks")
            if f[b"kind"] == b"trade"]


def gaps(r: redis.Redis) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("stream:gaps")]


def sent_trades(ws: BinanceWsServer) -> list[dict[str, int | str]]:
    """Every trade the server has sent (or was sending when a connection went away)."""
    return [json.loads(text)["data"] for stream, text in ws.frames[: ws.position] if stream.endswith("@trade")]


def test_a_killed_or_stopped_ingest_records_its_downtime_as_a_gap_per_symbol(tmp_path, redis_server):
    r = redis_server.client()
    # ~68,000 frames, paced so that the feed still runs across both restarts
    ws = BinanceWsServer([BTC_RECORDING, ETH_RECORDING], Script(pace_s=0.0002)).start()
    log = tmp_path / "ingest.log"
    try:
        ingest = start_ingest(redis_server.url, ws, log)
        wait_for(lambda: r.exists("stream:ticks") and r.xlen("stream:ticks") >= 8_000, 120, "first ticks")
        assert ingest.stop() == 0  # clean stop (SIGTERM): the downtime still loses trades
        assert r.get("ingest:clean_stop:binance-spot") is not None
        stored_before_stop = stream_trades(r)
        last_before_stop = {s: max(t for _, sym, _, t in stored_before_stop if sym == s) for s in SYMBOLS}
        stop_id = stored_before_stop[-1][0]

        ingest = start_ingest(redis_server.url, ws, log)
        wait_for(lambda: len(gaps(r)) == 2, 60, "the restart gaps")
        assert r.get("ingest:clean_stop:binance-spot") is None  # running: a kill from now on is a crash
        count = r.xlen("stream:ticks")
        wait_for(lambda: r.xlen("stream:ticks") >= count + 8_000, 120, "more ticks")
        ingest.kill()  # SIGKILL: no shutdown code runs
        stored_before_kill = stream_trades(r)
        last_before_kill = {s: max(t for _, sym, _, t in stored_before_kill if sym == s) for s in SYMBOLS}
        last_id = stored_before_kill[-1][0]
        persisted = {k.decode(): int(v) for k, v in r.hgetall("ingest:last_trade:binance-spot").items()}
        assert persisted == last_before_kill, "the newest published trade per symbol is kept with every flush"

        ingest = start_ingest(redis_server.url, ws, log)
        wait_for(lambda: len(gaps(r)) == 4, 60, "the crash gaps")
        wait_for(lambda: status(r, "ingest").get("gaps") == 2, 10, "the status record")
    finally:
        ingest.stop()
        ws.stop()

    all_gaps = gaps(r)
    stored = stream_trades(r)
    stopped, crashed = all_gaps[:2], all_gaps[2:]
    for group, reason, last_before, after_id in ((stopped, "ingest restarted", last_before_stop, stop_id),
                                                 (crashed, "ingest restarted after crash", last_before_kill, last_id)):
        assert sorted(g["symbols"] for g in group) == list(SYMBOLS)
        for g in group:
            symbol = g["symbols"]
            assert g["reason"] == reason and g["venue"] == "binance-spot"
            assert int(g["start_ms"]) == last_before[symbol]
            # ends at the symbol's first trade published after the restart
            later = [t for eid, s, _, t in stored if s == symbol and parse_id(eid) > parse_id(after_id)]
            assert int(g["end_ms"]) == min(later)
    # every trade the server sent that never reached the stream lies inside one of its symbol's gaps
    # (before each symbol's newest stored trade: what the last stop lost, from that ms on, has no gap yet)
    stored_ids = {(s, tid) for _, s, tid, _ in stored}
    newest = {s: max(t for _, sym, _, t in stored if sym == s) for s in SYMBOLS}
    missing = [t for t in sent_trades(ws) if (t["s"], t["t"]) not in stored_ids and int(t["T"]) < newest[t["s"]]]
    for t in missing:
        assert any(g["symbols"] == t["s"] and int(g["start_ms"]) <= int(t["T"]) <= int(g["end_ms"])
                   for g in all_gaps), t
    text = log.read_text()
    assert "ingest restarted after crash: gaps open" in text


# ---------------------------------------------------------------- Redis that goes back in time


def _commands(data: bytes) -> list[tuple[int, int, list[bytes]]]:
    """RESP commands of an AOF as (start offset, end offset, arguments)."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        assert data[pos:pos + 1] == b"*", f"not a RESP array at {pos}"
        end = data.index(b"\r\n", pos)
        n = int(data[pos + 1:end])
        pos = end + 2
        args = []
        for _ in range(n):
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1:end])
            args.append(data[end + 2:end + 2 + size])
            pos = end + 2 + size + 2
        out.append((start, pos, args))
    return out


def cut_aof(workdir: Path, xadds_to_lose: int) -> list[list[bytes]]:
    """Cut the incremental AOF back at a command boundary so that its last `xadds_to_lose` tick XADDs are gone
    (with whatever followed them); return the XADDs cut."""
    incr = next((workdir / "appendonlydir").glob("*.incr.aof"))
    data = incr.read_bytes()
    commands = _commands(data)
    xadds = [i for i, (_, _, args) in enumerate(commands) if args[0].upper() == b"XADD" and args[1] == b"stream:ticks"]
    first_lost = xadds[-xadds_to_lose]
    incr.write_bytes(data[: commands[first_lost][0]])
    return [commands[i][2] for i in xadds[-xadds_to_lose:]]


def test_redis_losing_acknowledged_writes_is_noticed_and_recorded_as_gaps(tmp_path):
    server = start_redis(tmp_path / "redis", appendonly=True)
    r = server.client()
    ws = BinanceWsServer([BTC_RECORDING, ETH_RECORDING], Script(pace_s=0.0002)).start()
    log = tmp_path / "ingest.log"
    ingest = start_ingest(server.url, ws, log)
    try:
        wait_for(lambda: r.exists("stream:ticks") and r.xlen("stream:ticks") >= 6_000, 120, "ticks")
        server.proc.kill()  # an OS crash: what the AOF had not synced is gone ...
        server.proc.wait(timeout=10)
        r.close()
        lost = cut_aof(server.dir, 600)  # ... simulated by cutting its last 600 tick XADDs
        server = restart_redis(server, appendfsync="everysec", wait_s=20)
        r = server.client()
        # a symbol's rewind gap closes at its next trade: wait for every symbol the cut took trades from
        lost_symbols = {a[4::2][a[3::2].index(b"sym")].decode() for a in lost if b"trade" in a[4::2]}
        wait_for(lambda: lost_symbols <= {g["symbols"] for g in gaps(r) if g["reason"].startswith("redis lost")},
                 60, "the rewind gaps")
        wait_for(lambda: status(r, "ingest").get("redis_rewinds", 0) >= 1, 10, "the rewind counted")
        all_gaps = gaps(r)
    finally:
        assert ingest.stop() == 0, ingest.log()
        ws.stop()
        r.close()
        server.proc.terminate()
        server.proc.wait(timeout=10)

    fields = [dict(zip(args[3::2], args[4::2], strict=True)) for args in lost]
    lost_trades: dict[str, list[int]] = {}
    for f in fields:
        if f[b"kind"] == b"trade":
            lost_trades.setdefault(f[b"sym"].decode(), []).append(int(f[b"ts"]))
    assert lost_trades, "the cut took trades"
    rewind_gaps = {g["symbols"]: g for g in all_gaps if g["reason"].startswith("redis lost acknowledged writes")}
    assert set(rewind_gaps) == set(lost_trades)
    for symbol, times in lost_trades.items():
        g = rewind_gaps[symbol]
        # from the earliest lost trade (ingest remembers each confirmed trade) to the next trade it published
        assert int(g["start_ms"]) == min(times)
        assert int(g["end_ms"]) >= max(times)
    text = log.read_text()
    assert "REDIS WENT BACK IN TIME" in text and "publishing again" in text
