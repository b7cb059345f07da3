"""A local stand-in for Binance's klines endpoint (`GET /api/v3/klines`, `/fapi/v1/klines`), on http.server.

It serves Binance's own numbers: the official daily 1m kline CSV (ms or µs times), 5m klines aggregated
exactly from it, and 1s klines built exactly from the recorded trades (the recordings hold every trade
of the minutes 23:55-23:59, which is what makes those equal to Binance's). Semantics as Binance's:
`symbol` and `interval` required, `startTime`/`endTime` bound the open time (inclusive), `limit`
default 500 and at most 1000, oldest first; with only `endTime` (or neither) the newest `limit` klines.
Each answer carries `X-MBX-USED-WEIGHT-1M` (2 per request, per calendar minute); chosen requests can be
answered 429 with `Retry-After`, or 500. Every request is logged for the tests to look at.

Also `exchangeInfo` (issue 10's symbol check) for a fixed `listing` (symbol -> status, e.g. `BREAK`): spot
`/api/v3/exchangeInfo?symbol=X` answers that symbol or 400 `{"code": -1121, "msg": "Invalid symbol."}` (weight
20), `/fapi/v1/exchangeInfo` lists every symbol (weight 1), as Binance does; logged in `info_requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
PATHS = ("/api/v3/klines", "/fapi/v1/klines")
WEIGHT = 2
INFO_PATHS = {"/api/v3/exchangeInfo": 20, "/fapi/v1/exchangeInfo": 1}  # path -> weight

Kline = list[Any]  # [open_ms, "o", "h", "l", "c", "v", close_ms, "qv", n, "tbv", "tbqv", "0"]


def read_kline_csv(path: Path) -> list[Kline]:
    """A Binance kline CSV (no header, or Binance.US's header), times in ms or µs -> klines with ms times."""
    out = []
    for line in path.read_text().splitlines():
        cells = line.strip().split(",")
        if not cells[0].isdigit():
            continue
        open_t, close_t = int(cells[0]), int(cells[6])
        if open_t >= 10**14:  # µs, as Binance's spot data files since 2025
            open_t, close_t = open_t // 1000, close_t // 1000
        out.append([open_t, *cells[1:6], close_t, cells[7], int(cells[8]), cells[9], cells[10], cells[11]])
    return sorted(out, key=lambda k: k[0])


def _fmt(d: Decimal) -> str:
    return f"{d:.8f}"


def aggregate(klines: list[Kline], interval_ms: int) -> list[Kline]:
    """Longer klines from shorter ones, exactly (Decimal sums); only fully covered intervals."""
    groups: dict[int, list[Kline]] = {}
    for k in klines:
        groups.setdefault(k[0] - k[0] % interval_ms, []).append(k)
    per = interval_ms // (klines[1][0] - klines[0][0]) if len(klines) > 1 else 1
    out = []
    for start, ks in sorted(groups.items()):
        if len(ks) != per:
            continue
        s = [_fmt(sum((Decimal(k[i]) for k in ks), Decimal(0))) for i in (5, 7, 9, 10)]
        out.append([start, ks[0][1], _fmt(max(Decimal(k[2]) for k in ks)), _fmt(min(Decimal(k[3]) for k in ks)),
                    ks[-1][4], s[0], start + interval_ms - 1, s[1], sum(k[8] for k in ks), s[2], s[3], "0"])
    return out


def klines_from_trades(trades: Iterable[dict[str, Any]], interval_ms: int, since_ms: int) -> list[Kline]:
    """Klines from Binance trade messages (`t`, `p`, `q`, `T`, `m`), trade by trade in Decimal."""
    acc: dict[int, dict[str, Any]] = {}
    for t in sorted(trades, key=lambda d: d["t"]):
        if t["T"] < since_ms:
            continue
        p, q = Decimal(t["p"]), Decimal(t["q"])
        c = acc.setdefault(t["T"] - t["T"] % interval_ms, {
            "o": p, "h": p, "l": p, "v": Decimal(0), "qv": Decimal(0), "n": 0, "tbv": Decimal(0), "tbqv": Decimal(0)})
        c["h"], c["l"], c["c"] = max(c["h"], p), min(c["l"], p), p
        c["v"] += q
        c["qv"] += p * q
        c["n"] += 1
        if not t["m"]:  # the buyer was the taker
            c["tbv"] += q
            c["tbqv"] += p * q
    return [
        [o, _fmt(c["o"]), _fmt(c["h"]), _fmt(c["l"]), _fmt(c["c"]), _fmt(c["v"]), o + interval_ms - 1,
         _fmt(c["qv"]), c["n"], _fmt(c["tbv"]), _fmt(c["tbqv"]), "0"]
        for o, c in sorted(acc.items())
    ]


@dataclass
class KlinesServer:
    book: dict[tuple[str, str], list[Kline]]
    time_unit: str = "ms"  # "us": answer in µs, as Binance does with X-MBX-TIME-UNIT: MICROSECOND
    answer_429: set[int] = field(default_factory=set)  # 1-based request numbers answered 429
    answer_500: set[int] = field(default_factory=set)
    retry_after_s: int = 1
    requests: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    listing: dict[str, str] = field(default_factory=dict)  # exchangeInfo: symbol -> status
    info_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _weight: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = {s for s, _ in self.book}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="klines-server",
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> KlinesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def exchange_info(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.info_requests.append((path, query))
            minute = int(time.time() // 60)
            self._weight[minute] = self._weight.get(minute, 0) + INFO_PATHS[path]
            hdrs = {"X-MBX-USED-WEIGHT-1M": str(self._weight[minute])}
        wanted = query.get("symbol") if path.startswith("/api/") else None
        if wanted is not None and wanted not in self.listing:
            return 400, hdrs, {"code": -1121, "msg": "Invalid symbol."}
        symbols = [{"symbol": s, "status": st, "baseAsset": s[:-4], "quoteAsset": s[-4:]}
                   for s, st in sorted(self.listing.items()) if wanted is None or s == wanted]
        return 200, hdrs, {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [],
                           "exchangeFilters": [], "symbols": symbols}

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if path in INFO_PATHS:
            return self.exchange_info(path, query)
        with self.lock:
            self.requests.append(query)
            n = len(self.requests)
            minute = int(time.time() // 60)
            self._weight[minute] = self._weight.get(minute, 0) + WEIGHT
            hdrs = {"X-MBX-USED-WEIGHT-1M": str(self._weight[minute])}
        if path not in PATHS:
            return 404, hdrs, {"code": -1, "msg": "not found"}
        if n in self.answer_429:
            return 429, hdrs | {"Retry-After": str(self.retry_after_s)}, {"code": -1003, "msg": "Too many requests"}
        if n in self.answer_500:
            return 500, hdrs, {"code": -1000, "msg": "unknown error"}
        symbol, interval = query.get("symbol", ""), query.get("interval", "")
        if symbol not in self.symbols:
            return 400, hdrs, {"code": -1121, "msg": "Invalid symbol."}
        if interval not in INTERVAL_MS:
            return 400, hdrs, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = min(int(query.get("limit", "500")), 1000)
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return 400, hdrs, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if limit < 1:
            return 400, hdrs, {"code": -1100, "msg": "limit must be at least 1"}
        rows = [k for k in self.book.get((symbol, interval), [])
                if (start is None or k[0] >= start) and (end is None or k[0] <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        unit = 1000 if self.time_unit == "us" or headers.get("x-mbx-time-unit", "").upper() == "MICROSECOND" else 1
        if unit != 1:
            rows = [[k[0] * unit, *k[1:6], k[6] * unit + (unit - 1), *k[7:]] for k in rows]
        return 200, hdrs, rows


def _handler(server: KlinesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            status, headers, body = server.answer(url.path, query, {k.lower(): v for k, v in self.headers.items()})
            with server.lock:
                server.statuses.append(status)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            pass

    return Handler


def fixture_book(kline_csv: Path, recordings: list[Path], trades_since_ms: int) -> dict[tuple[str, str], list[Kline]]:
    """The book the tests serve: BTCUSDT 1m (official CSV) and 5m (aggregated), 1s of every recorded symbol
    built from its trades from `trades_since_ms` on (where the recordings are complete)."""
    from tests.recordings import trades

    one_minute = read_kline_csv(kline_csv)
    symbol = kline_csv.name.split("-")[0]
    book = {(symbol, "1m"): one_minute, (symbol, "5m"): aggregate(one_minute, 300_000)}
    for path in recordings:
        ts = trades(path)
        book[(ts[0]["s"], "1s")] = klines_from_trades(ts, 1_000, trades_since_ms)
    return book


def recorded_book(kline_csv: Path, recordings: list[Path], trades_since_ms: int) -> dict[tuple[str, str], list[Kline]]:
    """`fixture_book` plus 1m and 5m klines of the symbols without an official CSV (ETHUSDT), built from the
    recorded trades for the minutes the recordings hold whole (from `trades_since_ms` to the last full one)."""
    from tests.recordings import trades

    book = fixture_book(kline_csv, recordings, trades_since_ms)
    for path in recordings:
        ts = trades(path)
        symbol = ts[0]["s"]
        if (symbol, "1m") in book:
            continue
        newest = max(t["T"] for t in ts)
        whole = [k for k in klines_from_trades(ts, 60_000, trades_since_ms) if k[6] < newest - newest % 60_000]
        book[(symbol, "1m")] = whole
        book[(symbol, "5m")] = aggregate(whole, 300_000)
    return book
