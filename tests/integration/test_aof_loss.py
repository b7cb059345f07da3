"""A Redis whose AOF loses its last second: the history notices and repairs itself from Binance's klines.

With `appendfsync everysec` an OS crash can drop the last second of the AOF. Simulated here exactly: the
worker is paused (SIGSTOP) so the newest ticks sit unread in the stream, redis-server is killed (SIGKILL),
its AOF is cut back at a command boundary so the last second of XADDs is gone, and redis-server restarts
on the same port and directory. The feed never broke, so no gap is recorded and no minute is missing; the
worker resumes (it reconnects by itself), ingest carries on, and only the kline check can tell that the
23:58 candles lack trades. It ends with every closed 1m candle equal to the REST klines again, the 5m and 1s
candles of the repaired minute too, and the repair recorded in `candle_sources`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest
import redis

from tests.conftest import BTC_KLINES_1M, BTC_RECORDING, ETH_RECORDING, free_port
from tests.integration.klines_server import KlinesServer, recorded_book
from tests.integration.procs import drained, status, wait_for
from tests.integration.test_backfill_e2e import CandleWorker, assert_equal_to_book, replay, stored
from tests.recordings import frames

pytestmark = pytest.mark.integration

M = 60_000
DAY = 1723075200000
T0 = DAY + 1435 * M  # 23:55, from where the recordings hold every trade
LOST_MINUTE = T0 + 3 * M  # 23:58
PAUSE_NS = LOST_MINUTE * 1_000_000  # the worker is paused for the frames received from 23:58:00 ...
CRASH_NS = (LOST_MINUTE + 30_000) * 1_000_000  # ... to the crash at 23:58:30; the last second of them is lost
TOKEN = "s3cret-for-the-test"
BOOK = recorded_book(BTC_KLINES_1M, [BTC_RECORDING, ETH_RECORDING], T0)


@dataclass
class AofRedis:
    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> redis.Redis:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        # everysec is the setting whose crash loses up to a second; no rewrite, so one incr file holds it all
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0", "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        wait_for(client.ping, 10, f"redis-server on port {self.port}", interval=0.05)
        return client

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def incr_aof(self) -> Path:
        (path,) = (self.dir / "appendonlydir").glob("*.incr.aof")
        return path


def resp_commands(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(offset, arguments) of each command of an AOF (RESP arrays of bulk strings)."""
    pos = 0
    while pos < len(data):
        start = pos
        assert data[pos:pos + 1] == b"*", f"not a command at offset {pos}"
        end = data.index(b"\r\n", pos)
        count, pos = int(data[pos + 1:end]), end + 2
        args = []
        for _ in range(count):
            end = data.index(b"\r\n", pos)
            size, pos = int(data[pos + 1:end]), end + 2
            args.append(data[pos:pos + size])
            pos += size + 2
        yield start, args


def cut_last_xadds(aof: Path, stream: bytes, n: int) -> list[dict[bytes, bytes]]:
    """Truncate the AOF at the start of the n-th last XADD to `stream`: it and everything after are lost,
    as when the OS never wrote the file's last second. Returns the lost entries' fields."""
    data = aof.read_bytes()
    xadds = [(off, args) for off, args in resp_commands(data) if args[0].upper() == b"XADD" and args[1] == stream]
    cut = xadds[-n][0]
    with aof.open("r+b") as fh:
        fh.truncate(cut)
    lost = []
    for _, args in xadds[-n:]:
        # XADD key [options] id field value ...: Redis writes the id it chose, as ms-seq
        at = next(i for i, a in enumerate(args) if i > 1 and re.fullmatch(rb"\d+-\d+", a))
        fields = args[at + 1:]
        lost.append(dict(zip(fields[::2], fields[1::2], strict=True)))
    return lost


def write_part(tmp: Path, name: str, first_ns: int, end_ns: int) -> list[Path]:
    """The stream frames received in [first_ns, end_ns), without trades from before 23:55 (so every replayed
    minute is whole and has a kline to equal)."""
    out = []
    for rec in (BTC_RECORDING, ETH_RECORDING):
        path = tmp / f"{name}-{rec.name}"
        with gzip.open(path, "wb") as fh:
            for ns, raw in frames(rec):
                if not first_ns <= ns < end_ns or not raw.startswith(b'{"stream"'):
                    continue
                doc = json.loads(raw)
                if doc["stream"].endswith("@trade") and doc["data"]["T"] < T0:
                    continue
                fh.write(b"%d %s\n" % (ns, raw))
        out.append(path)
    return out


def ticks_received(paths: list[Path], since_ns: int) -> int:
    return sum(1 for p in paths for ns, raw in frames(p)
               if ns >= since_ns and (b"@trade" in raw[:40] or b"@bookTicker" in raw[:40]))


def test_redis_losing_its_last_second_is_noticed_and_repaired(tmp_path: Path) -> None:
    part_a = write_part(tmp_path, "a", T0 * 1_000_000 - 60 * 10**9, PAUSE_NS)
    part_b = write_part(tmp_path, "b", PAUSE_NS, CRASH_NS)
    part_c = write_part(tmp_path, "c", CRASH_NS, 2**63)
    lost_n = ticks_received(part_b, CRASH_NS - 10**9)  # one second of the feed
    server = AofRedis(tmp_path / "redis", free_port())
    server.dir.mkdir()
    r = server.start()
    with KlinesServer(BOOK) as rest:
        # Backfill off: no gap, hole or start-up job can repair what the kline check must find by itself.
        worker = CandleWorker(server.url, tmp_path / "data", tmp_path / "worker.log", BINANCE_REST_URL=rest.url,
                              CONSUMER_NAME="w", BACKFILL_ENABLED="false", KLINE_CHECK="true",
                              KLINE_CHECK_DELAY_S="0", ACCESS_TOKEN=TOKEN)
        try:
            worker.wait_healthy()
            replay(r, server.url, part_a, tmp_path / "ingest-a.log")
            wait_for(lambda: drained(r, groups=("candles",)), 30, "the worker to store part A")

            os.kill(worker.p.pid, signal.SIGSTOP)  # the newest ticks now wait unread in the stream
            try:
                replay(r, server.url, part_b, tmp_path / "ingest-b.log")
                before = r.xlen("stream:ticks")
                r.close()
                server.kill()
                lost = cut_last_xadds(server.incr_aof(), b"stream:ticks", lost_n)
                r = server.start()
            finally:
                os.kill(worker.p.pid, signal.SIGCONT)
            assert r.xlen("stream:ticks") == before - lost_n  # the AOF really lost them
            lost_trades = {s: sum(1 for f in lost if f[b"kind"] == b"trade" and f[b"sym"] == s.encode())
                           for s in ("BTCUSDT", "ETHUSDT")}
            assert lost_trades["BTCUSDT"] > 0 and lost_trades["ETHUSDT"] > 0
            assert all(LOST_MINUTE <= int(f[b"ts"]) < LOST_MINUTE + M for f in lost if f[b"kind"] == b"trade")

            wait_for(lambda: drained(r, groups=("candles",)), 30, "the worker to reconnect and read part B")
            replay(r, server.url, part_c, tmp_path / "ingest-c.log")

            def checked() -> dict[str, object] | None:
                s = status(r, "worker-backfill")
                done = s.get("kline_checked") == 10 and s.get("kline_check_pending") == 0
                return s if done and s.get("jobs_pending") == 0 and drained(r, groups=("candles",)) else None

            s = wait_for(checked, 40, "the kline check of every closed minute and its follow-up repairs")
            assert (s["kline_mismatches"], s["kline_repaired"], s["kline_unverified"]) == (2, 2, 0), s
            assert s["last_kline_mismatch"]["open_time"] == LOST_MINUTE
            assert s["kline_followups_repaired"] >= 4  # the 5m candle and the lost second's 1s candle, per symbol
            assert r.xlen("stream:gaps") == 0  # nothing else noticed: the feed never broke

            for symbol in ("BTCUSDT", "ETHUSDT"):
                one = stored(worker, symbol, "1m")
                assert assert_equal_to_book(one, BOOK[(symbol, "1m")], T0, T0 + 4 * M) == 5
                assert [t for t in one if one[t]["source"] == "rest"] == [LOST_MINUTE]
                assert assert_equal_to_book(stored(worker, symbol, "5m"), BOOK[(symbol, "5m")], T0, T0) == 1
                assert assert_equal_to_book(stored(worker, symbol, "1s"), BOOK[(symbol, "1s")], LOST_MINUTE,
                                            LOST_MINUTE + M - 1000) > 0
            verify_on_demand(worker.api)
        finally:
            worker_rc = worker.stop()
            r.close()
            server.kill()
    assert worker_rc == 0, worker.log()
    assert "differed from Binance's klines, repaired" in worker.log()

    con = duckdb.connect(str(tmp_path / "data" / "market_data.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT symbol, open_time, live_trades, rest_trades, differed FROM candle_sources "
                           "WHERE interval = '1m' AND reason = 'kline-check' AND outcome = 'replaced' "
                           "ORDER BY symbol").fetchall()
    finally:
        con.close()
    kline_trades = {s: next(k[8] for k in BOOK[(s, "1m")] if k[0] == LOST_MINUTE) for s in ("BTCUSDT", "ETHUSDT")}
    assert [r[:4] for r in rows] == [
        (s, LOST_MINUTE, kline_trades[s] - lost_trades[s], kline_trades[s]) for s in ("BTCUSDT", "ETHUSDT")]
    assert all(r[4].startswith("trades,volume,quote_volume") for r in rows)
    print(f"\nAOF cut: {lost_n} ticks lost ({lost_trades} trades), repaired by the kline check in "
          f"{s['kline_requests']} requests")


def verify_on_demand(api: str) -> None:
    """`POST /candles/verify`: a write (it repairs), so it needs the token; the repaired history agrees."""
    url, query = f"{api}/candles/verify", {"symbol": "BTCUSDT", "start": str(T0), "end": "2024-08-09T00:10:00Z"}
    assert httpx.post(url, params=query, timeout=30).status_code == 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    resp = httpx.post(url, params=query, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    # the live minutes 23:55..23:59 but the one repaired already (REST now); 00:00 has not closed
    assert resp.json() == {"symbol": "BTCUSDT", "start": T0, "end": T0 + 4 * M, "checked": 4, "mismatches": 0,
                           "repaired": 0, "unverified": 0, "details": []}
    bad = httpx.post(url, params={"symbol": "BTCUSDT", "start": str(T0)}, headers=auth, timeout=30)
    assert bad.status_code == 400 and "end" in bad.json()["error"]


def test_cut_last_xadds_cuts_at_a_command_boundary(tmp_path: Path) -> None:
    aof = tmp_path / "x.incr.aof"
    cmds = [[b"SELECT", b"0"], [b"XADD", b"s", b"1-0", b"k", b"a"], [b"SET", b"x", b"1"],
            [b"XADD", b"s", b"2-0", b"k", b"b"], [b"XADD", b"t", b"3-0", b"k", b"c"]]
    aof.write_bytes(b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in c)
                             for c in cmds))
    lost = cut_last_xadds(aof, b"s", 1)
    assert lost == [{b"k": b"b"}]
    assert [args for _, args in resp_commands(aof.read_bytes())] == cmds[:3]
