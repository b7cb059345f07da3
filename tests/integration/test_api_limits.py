"""The worker API against hostile and careless input, served by a real `python -m worker` (real Redis, real
DuckDB file): bounded bodies (gzip bombs, oversized and streamed bodies, with the worker's memory read from
/proc), the bearer token for writes, import checks over HTTP, derived intervals from 1m imports, bad queries.
"""

from __future__ import annotations

import gzip
import socket
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.integration.procs import Proc, WorkerProc

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
MAX_ROWS = 5_000
DAY = 1_723_075_200_000  # 2024-08-08T00:00:00Z
MB = 1_048_576


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Iterator[WorkerProc]:
    from tests.conftest import start_redis

    tmp = tmp_path_factory.mktemp("limits")
    server = start_redis(tmp / "redis")
    w = WorkerProc(server.url, tmp / "data", tmp / "worker.log", ACCESS_TOKEN=TOKEN,
                   IMPORT_MAX_ROWS=str(MAX_ROWS), BACKFILL_ENABLED="false")
    Proc.running.remove(w)  # lives for the module, not one test
    try:
        w.wait_healthy()
        yield w
    finally:
        w.stop()
        server.proc.terminate()
        server.proc.wait(10)


def post(w: WorkerProc, body: bytes | str, symbol: str, interval: str = "1m", headers: dict[str, str] | None = None,
         ) -> httpx.Response:
    return httpx.post(f"{w.api}/candles/import", params={"symbol": symbol, "interval": interval},
                      content=body, headers={**AUTH, **(headers or {})}, timeout=120)


def candles(w: WorkerProc, symbol: str, interval: str = "1m", **params: str | int) -> list[dict]:
    resp = httpx.get(f"{w.api}/candles", params={"symbol": symbol, "interval": interval, **params}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["candles"]


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":")
            out[name] = int(value.split()[0])
    return out


def gzip_bomb(inflated: int) -> bytes:
    """A CSV that inflates to `inflated` bytes, compressed piecewise so this test never holds it whole."""
    line = b"1723161300000,1.0,2.0,0.5,1.5,10\n"
    block = line * (MB // len(line))
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [comp.compress(b"open_time,open,high,low,close,volume\n")]
    for _ in range(inflated // len(block) + 1):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    return b"".join(parts)


def test_gzip_bombs_and_oversized_bodies_get_413_and_memory_stays_flat(worker, capsys):
    bomb = gzip_bomb(300 * MB)
    assert len(bomb) < 1 * MB
    before = memory_kb(worker.p.pid)
    # as Content-Encoding, and as a .csv.gz file sent as it is (detected by its magic bytes)
    for headers in ({"content-encoding": "gzip"}, {}):
        resp = post(worker, bomb, "BOMBUSDT", headers=headers)
        assert resp.status_code == 413, resp.text
        assert "API_MAX_BODY_MB" in resp.json()["error"]
    # a plain body over the limit, streamed without a Content-Length: cut off once past the limit
    chunk = b"9" * MB

    def stream() -> Iterator[bytes]:
        for _ in range(60):
            yield chunk

    try:
        resp = httpx.post(f"{worker.api}/candles/import", params={"symbol": "BIGUSDT"}, content=stream(),
                          headers=AUTH, timeout=120)
        assert resp.status_code == 413
        streamed = "413"
    except httpx.TransportError as exc:
        # the server may close the connection while the client still sends; nothing is stored (checked below)
        streamed = type(exc).__name__
    after = memory_kb(worker.p.pid)
    grew_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    with capsys.disabled():
        print(f"\nworker memory: VmRSS {before['VmRSS'] // 1024} MB -> {after['VmRSS'] // 1024} MB, VmHWM "
              f"{before['VmHWM'] // 1024} MB -> {after['VmHWM'] // 1024} MB; peak growth {grew_mb:.0f} MB "
              f"for a {len(bomb) / MB:.2f} MB gzip inflating to 300 MB and a 60 MB streamed plain body ({streamed})")
    assert grew_mb < 100
    assert worker.p.poll() is None
    # a good import still works afterwards, gzip too
    good = gzip.compress(b"open_time,open,high,low,close,volume\n1723161300000,1.0,2.0,0.5,1.5,10\n")
    resp = post(worker, good, "BOMBUSDT", headers={"content-encoding": "gzip"})
    assert resp.status_code == 200 and resp.json()["imported"] == 1
    assert candles(worker, "BIGUSDT") == []


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_sent(worker):
    head = (f"POST /candles/import?symbol=BTCUSDT&interval=1m HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {60 * MB}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", worker.port), timeout=30) as s:
        s.sendall(head + b"open_time,open")  # 14 of the 60 MB announced: the answer must not wait for the rest
        answer = b""
        while b"API_MAX_BODY_MB" not in answer and (part := s.recv(65536)):
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"API_MAX_BODY_MB" in answer


def test_rows_are_bounded(worker):
    rows = "".join(f"{DAY + i * 60_000},1,2,0.5,1.5,10\n" for i in range(MAX_ROWS + 1))
    resp = post(worker, "open_time,open,high,low,close,volume\n" + rows, "ROWSUSDT")
    assert resp.status_code == 400 and f"more than {MAX_ROWS} rows" in resp.json()["error"]
    assert candles(worker, "ROWSUSDT") == []


def test_writes_need_the_token_and_reads_stay_open(worker):
    body = "open_time,open,high,low,close,volume\n1723161300000,1.0,2.0,0.5,1.5,10\n"
    url = f"{worker.api}/candles/import?symbol=AUTHUSDT&interval=1m"
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                    {"authorization": f"Basic {TOKEN}"}):
        resp = httpx.post(url, content=body, headers=headers, timeout=30)
        assert resp.status_code == 401 and resp.json()["error"].startswith("authorization"), headers
    assert candles(worker, "AUTHUSDT") == []
    ok = httpx.post(url, content=body, headers=AUTH, timeout=30)
    assert ok.status_code == 200 and ok.json()["imported"] == 1
    # reads: open without a token, and a token sent along (the dashboard sends it when it has one) is fine
    for headers in ({}, AUTH):
        resp = httpx.get(f"{worker.api}/candles", params={"symbol": "AUTHUSDT"}, headers=headers, timeout=30)
        assert resp.status_code == 200 and len(resp.json()["candles"]) == 1
        assert httpx.get(f"{worker.api}/health", headers=headers, timeout=30).status_code == 200


def test_a_generic_ohlcv_file_with_empty_optional_cells_imports(worker):
    # the dashboard's generic upload: optional columns present but empty
    body = ("open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume\n"
            f"{DAY},1.5,2.5,1.25,2.0,10,,,\n{DAY + 60_000},2.0,2.5,1.5,2.25,0,,,\n")
    resp = post(worker, body, "GENUSDT")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"imported": 2, "skipped": 0, "unit": "ms", "first": DAY, "last": DAY + 60_000, "rows": 2}
    rows = candles(worker, "GENUSDT", start=DAY)
    assert [(c["open_time"], c["open"], c["close"], c["volume"]) for c in rows] == [
        (DAY, "1.50000000", "2.00000000", "10.00000000"), (DAY + 60_000, "2.00000000", "2.25000000", "0.00000000")]
    # unknown is unknown (null), never 0: a 0 quote volume would claim a VWAP of 0
    assert all(c["quote_volume"] is None and c["trades"] is None and c["vwap"] is None for c in rows)
    assert all(c["source"] == "import" for c in rows)


@pytest.mark.parametrize(
    ("header", "times", "unit"),
    [("time", ["1723075200", "1723075260"], "s"),
     ("timestamp", ["1723075200000000", "1723075260000000"], "us"),
     ("date", ["2024-08-08T00:00:00Z", "2024-08-08 00:01:00"], "iso")],
)
def test_the_file_unit_is_detected_and_times_land_in_2024(worker, header, times, unit):
    symbol = f"UNIT{unit.upper()}USDT"
    body = f"{header},open,high,low,close,volume\n" + "".join(f"{t},1,2,0.5,1.5,3\n" for t in times)
    resp = post(worker, body, symbol)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"imported": 2, "skipped": 0, "unit": unit, "first": DAY, "last": DAY + 60_000, "rows": 2}
    assert [c["open_time"] for c in candles(worker, symbol, start=0)] == [DAY, DAY + 60_000]


OK_ROW = "1,2,0.5,1.5,10"


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([f"{DAY},1,2,0.5,1.5,10", f"{DAY + 60_000}000,1,2,0.5,1.5,10"],
         f"row 2, column open_time: '{DAY + 60_000}000' looks like microseconds but the file's first time is in "
         "milliseconds (one unit per file)"),
        ([f"{DAY},1,0.9,0.5,1.5,10"], "row 1, column high: '0.9' is below open '1' or close '1.5'"),
        ([f"{DAY},1,2,1.2,1.5,10"], "row 1, column low: '1.2' is above open '1' or close '1.5'"),
        ([f"{DAY},1,2,3,1.5,10"], "row 1, column high: '2' is below low '3'"),
        ([f"{DAY},1,2,0.5,1.5,-10"], "row 1, column volume: '-10' must not be negative"),
        ([f"{DAY},0,2,0.5,1.5,10"], "row 1, column open: '0' must be positive"),
        ([f"{DAY},-1,2,-2,1.5,10"], "row 1, column open: '-1' must be positive"),
        ([f"{DAY},{OK_ROW}", f"{DAY},{OK_ROW}"], f"row 2, column open_time: '{DAY}' appears again (first at row 2)"),
        ([f"{DAY},{OK_ROW}", f"{DAY + 90_000},{OK_ROW}"],
         f"row 2, column open_time: '{DAY + 90_000}' is 2024-08-08 00:01:30 UTC, not on the 60000 ms grid of the "
         "interval"),
        ([f"{2**70},{OK_ROW}"], f"row 1, column open_time: '{2**70}' is beyond int64"),
        ([f"60000,{OK_ROW}"], "row 1, column open_time: '60000' looks like seconds but the file's first time is in "
                              "milliseconds (one unit per file)"),
        ([f"{DAY},1,2,0.5,1.5," + "9" * 5000],
         "row 1, column volume: '" + "9" * 40 + "'… (5000 characters) is longer than 100 characters"),
        ([f"{DAY},1,2,0.5,1.5,1.123456789"],
         "row 1, column volume: '1.123456789' has more than 8 decimal places (stored exactly, never rounded)"),
    ],
)
def test_impossible_candles_are_refused_naming_row_and_column_and_nothing_is_stored(worker, rows, error):
    body = "open_time,open,high,low,close,volume\n" + f"{DAY - 60_000},{OK_ROW}\n" + "".join(r + "\n" for r in rows)
    resp = post(worker, body, "BADUSDT")
    assert resp.status_code == 400
    # row numbers count from the first data row, which here is the good one before `rows` (messages above are
    # written as if `rows` came alone, except where they name another row)
    row, rest = error.split(",", 1)
    assert resp.json()["error"] == f"row {int(row.split()[1]) + 1},{rest}"
    assert candles(worker, "BADUSDT", start=0) == []


def test_taker_buy_volume_above_volume_is_refused(worker):
    body = ("open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume,taker_buy_quote_volume\n"
            f"{DAY},1,2,0.5,1.5,10,15,3,11,5\n")
    resp = post(worker, body, "TAKERUSDT")
    assert resp.status_code == 400
    assert resp.json()["error"] == "row 1, column taker_buy_volume: '11' is above volume '10'"


def _aggregate(rows: list[dict], ms: int) -> dict[int, dict]:
    """Plain-Python reference: 1m candles -> candles of `ms`."""
    out: dict[int, dict] = {}
    for r in sorted(rows, key=lambda r: r["t"]):
        k = r["t"] // ms * ms
        c = out.get(k)
        if c is None:
            out[k] = {"open": r["o"], "high": r["h"], "low": r["l"], "close": r["c"], "volume": r["v"],
                      "quote_volume": r["q"], "trades": r["n"]}
        else:
            c.update(high=max(c["high"], r["h"]), low=min(c["low"], r["l"]), close=r["c"],
                     volume=c["volume"] + r["v"], quote_volume=c["quote_volume"] + r["q"],
                     trades=c["trades"] + r["n"])
    return out


def test_derived_intervals_come_from_1m_imports_and_equal_a_plain_aggregation(worker):
    # two days and a bit of 1m candles, with deterministic but uneven values; no 5m row anywhere
    rows = []
    for i in range(2 * 1440 + 37):
        o = Decimal(100 + (i * 37) % 23) + Decimal(i % 7) / 100
        c = Decimal(100 + (i * 53) % 29) + Decimal(i % 5) / 100
        rows.append({"t": DAY + i * 60_000, "o": o, "c": c, "h": max(o, c) + Decimal(i % 3),
                     "l": min(o, c) - Decimal(i % 4) / 10, "v": Decimal(i % 11) + Decimal("0.125"),
                     "q": Decimal(i % 13) * 100 + Decimal("0.0000000001"), "n": i % 17})
    body = "open_time,open,high,low,close,volume,quote_volume,trades\n" + "".join(
        f"{r['t']},{r['o']},{r['h']},{r['l']},{r['c']},{r['v']},{r['q']},{r['n']}\n" for r in rows)
    assert post(worker, body, "DERUSDT").json()["imported"] == len(rows)
    for name, ms in (("15m", 900_000), ("1h", 3_600_000), ("4h", 14_400_000), ("1d", 86_400_000)):
        got = candles(worker, "DERUSDT", name, start=0)
        want = _aggregate(rows, ms)
        assert [c["open_time"] for c in got] == sorted(want), name
        for c in got:
            w = want[c["open_time"]]
            assert (Decimal(c["open"]), Decimal(c["high"]), Decimal(c["low"]), Decimal(c["close"]),
                    Decimal(c["volume"]), c["trades"]) == (
                w["open"], w["high"], w["low"], w["close"], w["volume"], w["trades"]), (name, c["open_time"])
            assert Decimal(c["quote_volume"]) == w["quote_volume"].quantize(Decimal("1e-8")), (name, c["open_time"])
    # one 5m candle stored for the first slot: that slot uses it, every other slot still comes from 1m
    five = f"open_time,open,high,low,close,volume\n{DAY},50,500,5,60,1\n"
    assert post(worker, five, "DERUSDT", "5m").json()["imported"] == 1
    first = candles(worker, "DERUSDT", "15m", start=DAY, end=DAY)[0]
    rest = _aggregate(rows[5:15], 900_000)[DAY]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        "50.00000000", "500.00000000", "5.00000000", f"{rest['close']:.8f}")
    assert Decimal(first["volume"]) == 1 + rest["volume"] and first["trades"] is None  # the 5m row had no count


@pytest.mark.parametrize("value", [str(2**63), "-" + "9" * 30, "9" * 5000, "-5", "+١٢٣", "10000-01-01"])
def test_absurd_query_times_are_a_400_not_a_500(worker, value):
    for name in ("start", "end"):
        resp = httpx.get(f"{worker.api}/candles", params={"symbol": "BTCUSDT", name: value}, timeout=30)
        assert resp.status_code == 400 and resp.json()["error"].startswith(name), (name, value, resp.text)
