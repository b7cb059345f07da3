"""The live control API (issue 10) on a real worker, a real redis-server and a local Binance REST server.

The worker runs as for the live feed (SOURCE=binance) against the local server, which lists BTCUSDT, ETHUSDT and
SOLUSDT as trading and LUNAUSDT in `BREAK`, and serves BTCUSDT's official 1m klines of 2024-08-08. The registry is
seeded with ETHUSDT alone; the recorded ETHUSDT ticks give the worker its "now" (the 9th, 00:00:01), so a BTCUSDT
added over the API must get its last hour of 1m candles from REST, equal to Binance's file.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import (
    BTC_KLINES_1M,
    BTC_RECORDING,
    ETH_RECORDING,
    RedisServer,
    free_port,
    python_module,
    service_env,
)
from tests.integration.klines_server import KlinesServer, fixture_book, read_kline_csv
from tests.integration.procs import Proc, WorkerProc, wait_for
from tests.recordings import frames, trades

pytestmark = pytest.mark.integration

TOKEN = "control-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = 1723075200000  # 2024-08-08 00:00Z
LISTING = {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "SOLUSDT": "TRADING", "LUNAUSDT": "BREAK"}
FIELDS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7, "taker_buy_volume": 9,
          "taker_buy_quote_volume": 10}


def replay_eth(r: redis.Redis, redis_url: str, log: Path) -> int:
    """The ETHUSDT recording into stream:ticks (ingest's replay source); the newest trade time."""
    ticks = sum(1 for _, raw in frames(ETH_RECORDING) if b"@trade" in raw[:40] or b"@bookTicker" in raw[:40])
    target = r.xlen("stream:ticks") + ticks
    args = python_module("ingest", "--source", "replay", "--speed", "0", "--replay-file", str(ETH_RECORDING))
    proc = Proc(args, service_env(redis_url, SYMBOLS="ethusdt"), log)
    try:
        wait_for(lambda: r.xlen("stream:ticks") >= target, 60, "the replay's ticks in the stream")
        proc.p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    finally:
        proc.stop(timeout=10)
    return max(t["T"] for t in trades(ETH_RECORDING))


class ApiWorker(WorkerProc):
    """`python -m worker --role candles`: the DuckDB owner with the API, backfill and research; the analytics
    consumer is not under test here."""

    def __init__(self, redis_url: str, data_dir: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        Proc.__init__(self, python_module("worker", "--role", "candles"),
                      service_env(redis_url, data_dir, API_PORT=str(self.port), **env), log)


class Env:
    def __init__(self, tmp: Path, redis_server: RedisServer, rest: KlinesServer) -> None:
        self.tmp, self.redis_server, self.rest = tmp, redis_server, rest
        self.r = redis_server.client()
        self.runs = 0
        self.now_ms = 0
        self.worker = self.start_worker()

    def start_worker(self, **extra: str) -> WorkerProc:
        self.runs += 1
        env = {"SOURCE": "binance", "BINANCE_REST_URL": self.rest.url, "BACKFILL_ENABLED": "true",
               "BACKFILL_LOOKBACK_H": "1", "KLINE_CHECK": "false", "SYMBOLS": "ethusdt", "ACCESS_TOKEN": TOKEN,
               "CONSUMER_NAME": "w", "SCAN_EVERY_S": "0", "GARCH_EVERY_S": "0", **extra}
        w = ApiWorker(self.redis_server.url, self.tmp / "data", self.tmp / f"worker{self.runs}.log", **env)
        Proc.running.remove(w)  # it serves the whole module: the per-test cleanup must leave it running
        w.wait_healthy(timeout=120)  # the machine is shared: start-up can be slow
        return w

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.worker.api}{path}", timeout=30)

    def send(self, method: str, path: str, body: object = None, raw: bytes | None = None,
             auth: bool = True) -> httpx.Response:
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        return httpx.request(method, f"{self.worker.api}{path}", content=content, headers=AUTH if auth else {},
                             timeout=60)

    def symbols(self) -> list[str]:
        return self.get("/symbols/active").json()["symbols"]

    def pairs(self) -> list[dict[str, object]]:
        return self.get("/pairs").json()["pairs"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from tests.conftest import start_redis

    tmp = tmp_path_factory.mktemp("control")
    server = start_redis(tmp / "redis")
    book = fixture_book(BTC_KLINES_1M, [BTC_RECORDING, ETH_RECORDING], DAY + 1435 * 60_000)
    try:
        with KlinesServer(book, listing=dict(LISTING)) as rest:
            e = Env(tmp, server, rest)
            try:
                e.now_ms = replay_eth(e.r, server.url, tmp / "ingest.log")
                yield e
            finally:
                e.worker.stop()
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=10)


def test_seeded_sets_and_bad_requests(env: Env) -> None:
    assert env.symbols() == ["ETHUSDT"]
    assert env.pairs() == []
    cases = [
        ("POST", "/symbols/active", b"not json", "not JSON"),
        ("POST", "/symbols/active", b"", "JSON object"),
        ("POST", "/symbols/active", b'["SOLUSDT"]', "JSON object"),
        ("POST", "/symbols/active", b'{"symbol": "sol-usdt"}', "not a symbol"),
        ("POST", "/symbols/active", b'{"symbol": 5}', "symbol must be a string"),
        ("POST", "/symbols/active", b'{"symbol": "SOLUSDT", "pair": "x"}', "exactly"),
        ("DELETE", "/symbols/active/sol-usdt", None, "not a symbol"),
        ("POST", "/pairs", b'{"y": "SOLUSDT"}', "x: required"),
        ("POST", "/pairs", b'{"y": "SOLUSDT", "x": "solusdt"}', "two different symbols"),
        ("POST", "/pairs", b'{"y": "SOLUSDT", "x": "BTCUSDT", "window": 1}', "window"),
        ("POST", "/pairs", b'{"y": "SOLUSDT", "x": "BTCUSDT", "beta_source": "magic"}', "beta_source"),
        ("POST", "/pairs", b'{"y": "SOLUSDT", "x": "BTCUSDT", "z_entry": 1, "z_exit": 1.5}', "z_exit"),
        ("POST", "/pairs", b'{"y": "SOLUSDT", "x": "BTCUSDT", "windw": 30}', "windw"),
        ("PUT", "/pairs/SOLUSDT", b'{"window": 30}', "not a pair"),
        ("DELETE", "/pairs/SOLUSDT-SOLUSDT", None, "two different symbols"),
    ]
    for method, path, raw, message in cases:
        resp = env.send(method, path, raw=raw)
        assert resp.status_code == 400, (method, path, raw, resp.text)
        assert message in resp.json()["error"], (method, path, raw, resp.text)
    resp = env.send("PUT", "/pairs/SOLUSDT-BTCUSDT", {"window": 30})
    assert resp.status_code == 404 and "not an active pair" in resp.json()["error"]
    # writes need the token; reads do not
    for method, path, body in [("POST", "/symbols/active", {"symbol": "SOLUSDT"}),
                               ("DELETE", "/symbols/active/ETHUSDT", None),
                               ("POST", "/pairs", {"y": "SOLUSDT", "x": "ETHUSDT"}),
                               ("PUT", "/pairs/SOLUSDT-ETHUSDT", {"window": 30}),
                               ("DELETE", "/pairs/SOLUSDT-ETHUSDT", None)]:
        resp = env.send(method, path, body, auth=False)
        assert resp.status_code == 401 and "authorization" in resp.json()["error"], (method, path)
    assert env.symbols() == ["ETHUSDT"] and env.pairs() == []  # nothing refused was written


def test_symbols_the_venue_does_not_trade_are_refused(env: Env) -> None:
    resp = env.send("POST", "/symbols/active", {"symbol": "nopeusdt"})
    assert resp.status_code == 422
    assert resp.json()["error"] == "NOPEUSDT is not a symbol on binance-spot (its exchangeInfo does not list it)"
    resp = env.send("POST", "/symbols/active", {"symbol": "LUNAUSDT"})
    assert resp.status_code == 422
    assert resp.json()["error"] == "LUNAUSDT is listed on binance-spot but does not trade now (status BREAK)"
    resp = env.send("POST", "/pairs", {"y": "LUNAUSDT", "x": "ETHUSDT"})
    assert resp.status_code == 422 and "status BREAK" in resp.json()["error"]
    assert env.symbols() == ["ETHUSDT"] and env.pairs() == []
    asked = [q.get("symbol") for path, q in env.rest.info_requests if path == "/api/v3/exchangeInfo"]
    assert asked == ["NOPEUSDT", "LUNAUSDT", "LUNAUSDT"]  # refusals are not cached


def test_add_symbol_backfills_its_history_and_pairs_follow(env: Env) -> None:
    n_info = len(env.rest.info_requests)
    resp = env.send("POST", "/symbols/active", {"symbol": "btcusdt"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"symbol": "BTCUSDT", "added": True, "validated": "venue"}
    assert env.symbols() == ["BTCUSDT", "ETHUSDT"]
    assert env.rest.info_requests[n_info:] == [("/api/v3/exchangeInfo", {"symbol": "BTCUSDT"})]

    # the last hour of 1m candles from REST (BACKFILL_LOOKBACK_H=1), equal to Binance's own file
    now = env.now_ms
    first = now - 3_600_000 - (now - 3_600_000) % 60_000
    want = {k[0]: k for k in read_kline_csv(BTC_KLINES_1M) if first <= k[0] and k[6] < now}
    assert first == DAY + 23 * 3_600_000 and len(want) == 60  # "now" is 00:00:01 on the 9th: 23:00..23:59

    def stored() -> dict[int, dict[str, str]] | None:
        text = env.worker.candles_csv("BTCUSDT", "1m", start=str(first), limit="1000")
        rows = {int(r["open_time"]): r for r in csv.DictReader(io.StringIO(text))}
        return rows if set(want) <= set(rows) else None

    got = wait_for(stored, 60, "BTCUSDT's backfilled 1m candles")
    assert sorted(t for t in got if t in want) == sorted(want)
    for t, k in want.items():
        assert got[t]["source"] == "rest"
        for name, i in FIELDS.items():
            assert Decimal(got[t][name]) == Decimal(k[i]), (t, name)
        assert int(got[t]["trades"]) == k[8]

    # a pair over active legs: the deployment's engine settings fill what the body leaves out
    resp = env.send("POST", "/pairs", {"y": "ETHUSDT", "x": "BTCUSDT", "window": 300, "beta_source": "ols"})
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert pair == {"id": "ETHUSDT/BTCUSDT", "y": "ETHUSDT", "x": "BTCUSDT", "window": 300, "window_ms": None,
                    "beta_source": "ols", "delta": 1e-9, "obs_noise": 1.0, "z_entry": 2.0, "z_exit": 0.5,
                    "price_source": "trade", "added": True}
    assert len(env.rest.info_requests) == n_info + 1  # both legs active: the venue is not asked again
    resp = env.send("PUT", "/pairs/ETHUSDT-BTCUSDT", {"window": 120, "price_source": "mid"})
    assert resp.status_code == 200 and (resp.json()["window"], resp.json()["price_source"]) == (120, "mid")
    resp = env.send("PUT", "/pairs/ETHUSDT-BTCUSDT", {"x": "SOLUSDT"})
    assert resp.status_code == 400 and "cannot change" in resp.json()["error"]
    stored_pair = {k: v for k, v in pair.items() if k != "added"} | {"window": 120, "price_source": "mid"}
    assert env.pairs() == [stored_pair]
    # a GET entry sent back whole is accepted (its id names the same pair)
    assert env.send("PUT", "/pairs/ETHUSDT-BTCUSDT", stored_pair).status_code == 200

    resp = env.send("DELETE", "/symbols/active/BTCUSDT")
    assert resp.status_code == 409 and "ETHUSDT/BTCUSDT" in resp.json()["error"]
    assert env.send("DELETE", "/pairs/ETHUSDT-BTCUSDT").json() == {"id": "ETHUSDT/BTCUSDT", "removed": True}
    assert env.send("DELETE", "/pairs/ETHUSDT-BTCUSDT").json() == {"id": "ETHUSDT/BTCUSDT", "removed": False}
    assert env.send("DELETE", "/symbols/active/btcusdt").json() == {"symbol": "BTCUSDT", "removed": True}
    assert env.symbols() == ["ETHUSDT"] and env.pairs() == []
    # its history stays
    again = env.worker.candles_csv("BTCUSDT", "1m", start=str(first), limit="1000")
    assert {int(r["open_time"]) for r in csv.DictReader(io.StringIO(again))} >= set(want)
    # re-added within the cache's time: no new venue request
    n_info = len(env.rest.info_requests)
    assert env.send("POST", "/symbols/active", {"symbol": "BTCUSDT"}).json()["added"] is True
    assert len(env.rest.info_requests) == n_info


def test_restart_finds_the_same_sets_and_an_unreachable_venue_adds_nothing(env: Env) -> None:
    assert env.send("POST", "/pairs", {"y": "SOLUSDT", "x": "BTCUSDT", "beta_source": "kalman"}).status_code == 200
    symbols, pairs = env.symbols(), env.pairs()
    assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"] and [p["id"] for p in pairs] == ["SOLUSDT/BTCUSDT"]
    assert env.worker.stop() == 0
    # SYMBOLS only seeds an empty registry: another value at the restart changes nothing
    env.worker = env.start_worker(SYMBOLS="xrpusdt,adausdt")
    assert env.symbols() == symbols and env.pairs() == pairs
    assert "control registry seeded" in env.tmp.joinpath("worker1.log").read_text()
    assert "control registry seeded" not in env.worker.log()

    env.rest.__exit__()  # the venue goes away
    resp = env.send("POST", "/symbols/active", {"symbol": "XRPUSDT"})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"].startswith("cannot validate XRPUSDT: venue unreachable")
    assert env.symbols() == symbols
    # removing needs no venue
    assert env.send("DELETE", "/pairs/SOLUSDT-BTCUSDT").json()["removed"] is True
    assert env.send("DELETE", "/symbols/active/SOLUSDT").json()["removed"] is True
    assert env.symbols() == ["BTCUSDT", "ETHUSDT"]
