"""The order book end to end on real data: the recordings replayed through ingest (DEPTH=true) into stream:depth,
a real worker `--role book`, its output in Redis.

Oracle: a book ticker's `u` is the update id of the book state it shows (../shared/realdata/README.md). Each
recording is cut right after its last depth diff whose u is some book ticker's u, so the worker's final book
must show exactly that ticker's best bid and ask, and equal, level for level, the pure book
(`qs_analytics.book`, checked against all 564 + 577 such moments in tests/unit/test_book_realdata.py) fed the same
events. A withheld diff must be detected as a break and repaired from a local REST depth server.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import httpx
import redis

from qs_analytics.alerts import AlertRule
from qs_analytics.book.sync import BookSync
from qs_common.depth import DepthDiff, DepthSnapshot
from tests.conftest import free_port, python_module, service_env
from tests.integration.depth_server import DepthServer
from tests.integration.procs import Proc, drained, run_replay, status, wait_for
from tests.unit.test_book_realdata import FIXTURES, RECORDINGS, feed, recording

LEVELS = 5_000


def cut_recording(symbol: str, out: Path, withhold: int | None = None) -> tuple[int, list[str]]:
    """Write the recording up to its last depth diff that a book ticker shows (without the `withhold`-th depth
    diff, counted from 0); return that diff's u and the lines written."""
    events, tickers = recording(symbol)
    last_u = max(e.final_id for e in events if isinstance(e, DepthDiff) and e.final_id in tickers)
    lines, depth_seen = [], 0
    with gzip.open(FIXTURES / RECORDINGS[symbol], "rt") as f:
        for line in f:
            if "@depth@100ms" in line[:60]:
                depth_seen += 1
                if depth_seen - 1 == withhold:
                    continue
                lines.append(line)
                if json.loads(line.split(" ", 1)[1])["data"]["u"] == last_u:
                    break
            else:
                lines.append(line)
    out.write_text("".join(lines))
    return last_u, lines


def reference(symbol: str, last_u: int) -> BookSync:
    """The pure book after every event up to the diff with u == last_u (nothing withheld)."""
    sync = BookSync(symbol)
    for event in recording(symbol)[0]:
        feed(sync, event)
        if isinstance(event, DepthDiff) and event.final_id == last_u:
            break
    return sync


def start_book_worker(redis_url: str, tmp: Path, **env: str) -> Proc:
    return Proc(python_module("worker", "--role", "book"),
                service_env(redis_url, tmp / "data", API_PORT=str(free_port()), BOOK_LEVELS=str(LEVELS),
                            WORKER_BATCH="200", **env), tmp / "worker.log")


def served_book(r: redis.Redis, symbol: str) -> dict:
    raw = r.get(f"book:depth:{symbol}")
    return json.loads(raw) if raw else {}


def book_done(r: redis.Redis, symbol: str, last_u: int) -> bool:
    book = served_book(r, symbol)
    return drained(r, "stream:depth", ("book",)) and book.get("last_update_id") == last_u and not book["stale"]


def check_book(r: redis.Redis, symbol: str, last_u: int) -> None:
    book = served_book(r, symbol)
    ref = reference(symbol, last_u)
    bids, asks = ref.book.top(LEVELS)
    assert book["last_update_id"] == last_u == ref.book.last_update_id
    assert book["bids"] == bids and book["asks"] == asks  # every level, exact decimal text
    assert book["event_time"] == ref.book.ts_event_ms
    tickers = recording(symbol)[1]
    assert (*book["bids"][0], *book["asks"][0]) == tickers[last_u]  # Binance's own top of book at that id
    metrics = json.loads(r.get(f"book:metrics:{symbol}"))
    assert metrics["last_update_id"] == last_u and metrics["stale"] is False
    assert metrics["mid"] == float((Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2) and metrics["spread_bps"] > 0


def test_replayed_depth_builds_the_books_binance_shows(redis_server, tmp_path):
    r = redis_server.client()
    files, last = [], {}
    for symbol in sorted(RECORDINGS):
        path = tmp_path / f"{symbol.lower()}.txt"
        last[symbol], _ = cut_recording(symbol, path)
        files.append(path)
    # a symbol alert rule on a book metric: the book role evaluates it on every publication
    rule = AlertRule.from_expression("wide", "book_spread_bps >= 0", symbol="*")
    r.hset("alerts:rules", rule.id, rule.to_json())
    worker = start_book_worker(redis_server.url, tmp_path, SOURCE="replay")  # its books come from the recordings
    api_port = free_port()  # the API runs in the DuckDB owner (role candles); it reads the book role's output
    api = Proc(python_module("worker", "--role", "candles"),
               service_env(redis_server.url, tmp_path / "api-data", API_PORT=str(api_port)), tmp_path / "api.log")
    stderr = run_replay(redis_server.url, files, tmp_path / "ingest.log", DEPTH="true")
    ingest = status(r, "ingest")
    depth_entries = r.xlen("stream:depth")
    print(f"ingest: {ingest['depth_published']} depth entries published, stream:depth {depth_entries}")
    assert ingest["depth"] is True and ingest["dead_letters"] == 0, stderr
    assert depth_entries == ingest["depth_published"] > 6_000  # the diffs of both cuts and both snapshots
    for symbol, u in last.items():
        wait_for(lambda s=symbol, u=u: book_done(r, s, u), 60, f"{symbol} book at u={u}")
        check_book(r, symbol, u)
    # the status record is rewritten once a second: wait for the one written after both books were done
    st = wait_for(lambda: (s := status(r, "worker-book")) and all(
        s.get("books", {}).get(sym, {}).get("applied", 0) > 3_000 for sym in last) and s, 10, "book status")
    for symbol in last:
        book = st["books"][symbol]
        print(f"{symbol}: {book}")
        assert book["gaps"] == 0 and book["stale"] is False and book["snapshots"] == 1
        assert book["applied"] > 3_000
    assert st["bad_entries"] == 0 and st["quarantined"] == 0
    assert r.xlen("stream:gaps") == 0
    fired = [f for _, f in r.xrange("stream:alerts")]
    assert sorted({f[b"symbol"] for f in fired}) == [b"BTCUSDT", b"ETHUSDT"]  # fires once per symbol, then armed off
    assert len(fired) == 2 and {f[b"metric"] for f in fired} == {b"book_spread_bps"}
    assert st["alerts_fired"] == 2

    base = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 60, "worker API")
    for symbol, u in last.items():
        resp = httpx.get(f"{base}/book", params={"symbol": symbol.lower(), "depth": "20"}, timeout=10)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        bids, asks = reference(symbol, u).book.top(20)
        assert body == {"symbol": symbol, "last_update_id": u, "event_time": body["event_time"], "stale": False,
                        "bids": bids, "asks": asks}
        assert (*body["bids"][0], *body["asks"][0]) == recording(symbol)[1][u]
        assert len(httpx.get(f"{base}/book", params={"symbol": symbol}, timeout=10).json()["bids"]) == 20
    assert httpx.get(f"{base}/book", params={"symbol": "XRPUSDT"}, timeout=10).status_code == 404
    for bad in ({"symbol": "BTCUSDT", "depth": "0"}, {"symbol": "BTCUSDT", "depth": "x"},
                {"symbol": "BTCUSDT", "depth": "5001"}, {"symbol": "BTC-USDT"}, {}):
        resp = httpx.get(f"{base}/book", params=bad, timeout=10)
        assert resp.status_code == 400 and "error" in resp.json(), bad
    api.stop()
    worker.stop()


def test_withheld_diff_is_a_break_and_the_book_resyncs_from_rest(redis_server, tmp_path):
    r = redis_server.client()
    symbol = "BTCUSDT"
    path = tmp_path / "btcusdt.txt"
    withheld = 1_000
    last_u, _ = cut_recording(symbol, path, withhold=withheld)
    events = recording(symbol)[0]
    diffs = [e for e in events if isinstance(e, DepthDiff)]
    snapshot_line = next(e for e in events if isinstance(e, DepthSnapshot))
    # A correct book a few diffs after the hole, as Binance's REST endpoint would answer then.
    later = reference(symbol, diffs[withheld + 50].final_id).book.to_snapshot()
    # Request 1 gets the recorder's own snapshot (whichever need asked first: the start or the break), later
    # requests the newer one: so the break is found whatever the timing, and only the newer snapshot mends it.
    with DepthServer({symbol: [snapshot_line, later]}) as rest:
        worker = start_book_worker(redis_server.url, tmp_path, BINANCE_REST_URL=rest.url, SYMBOLS=symbol)
        run_replay(redis_server.url, [path], tmp_path / "ingest.log", DEPTH="true", SYMBOLS=symbol)
        wait_for(lambda: book_done(r, symbol, last_u), 60, f"{symbol} book resynced to u={last_u}")
        check_book(r, symbol, last_u)
        # the status record is rewritten every second: wait until it has caught up with the served book
        def caught_up() -> bool:
            b = status(r, "worker-book").get("books", {}).get(symbol, {})
            return bool(b.get("gaps")) and b.get("stale") is False

        wait_for(caught_up, 10, "the break and the resync in the status record")
        st = status(r, "worker-book")
        book = st["books"][symbol]
        print(f"{symbol}: {book}; REST requests {rest.requests}")
        assert book["gaps"] == 1 and book["stale"] is False
        assert st["resyncs"] == 1 and st["snapshots_fetched"] >= 1
        assert all(q["path"] == "/api/v3/depth" and q["limit"] == "5000" for q in rest.requests)
        assert 1 <= len(rest.requests) <= 3
        gaps = r.xrange("stream:gaps")
        assert len(gaps) == 1
        fields = gaps[0][1]
        assert fields[b"reason"] == b"depth gap" and fields[b"symbols"] == symbol.encode()
        assert int(fields[b"end_ms"]) == diffs[withheld + 1].ts_event_ms
        worker.stop()
