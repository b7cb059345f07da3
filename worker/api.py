"""The worker's small HTTP API: history from the DuckDB file it alone owns.

GET /health, GET /symbols, GET /candles (json or csv), POST /candles/import (csv, plain or gzip),
POST /candles/verify (the kline check on demand: compares a range with Binance's klines and repairs it);
the live control registry's /symbols/active and /pairs (worker/api_control.py); GET /lag, the consumer groups' lag
over every tick stream (worker/lag.py, what KEDA scales the analytics shards on).

Writes (every method but GET/HEAD/OPTIONS) need `Authorization: Bearer <ACCESS_TOKEN>` when a token is set;
reads stay open. Bodies are read with a limit (worker/api_body.py); an unexpected error answers 500 with a
short JSON error, its traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qs_common import ohlc
from qs_common.settings import Settings
from qs_common.symbols import is_symbol
from qs_common.times import INT64_MAX, INT64_MIN, epoch_to_ms, iso_to_ms
from worker.api_body import BodyError, read_body
from worker.api_book import BookReader, book_routes
from worker.api_control import control_routes
from worker.api_forward import ShardForward
from worker.api_research import research_routes
from worker.candles import ALL_INTERVALS, STORED_INTERVALS
from worker.shards import ShardRegistry
from worker.store import OUTPUT_COLUMNS, CandleStore
from worker.venue_check import SymbolValidator

log = logging.getLogger("worker.api")

MAX_LIMIT = 100_000
DEFAULT_LIMIT = 1_000
# Query times are ms in [1970, 10000): anything else is a mistake (and beyond int64 would fail in SQL).
MAX_QUERY_MS = 253_402_300_799_999
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BadRequest(ValueError):
    pass


def parse_time_ms(value: str, name: str) -> int:
    """Milliseconds (or µs/ns, told apart by size) since the epoch, or ISO-8601 (naive means UTC)."""
    text = value.strip()
    if re.fullmatch(r"-?[0-9]+", text):  # ASCII digits only: int() would also take other scripts' digits
        if len(text) > 20 or not INT64_MIN <= int(text) <= INT64_MAX:
            raise BadRequest(f"{name}: {ohlc.show(value)} is beyond int64")
        ms = epoch_to_ms(int(text))
    else:
        try:
            ms = iso_to_ms(text)
        except (ValueError, OverflowError):
            raise BadRequest(f"{name}: {ohlc.show(value)} is neither epoch milliseconds nor ISO-8601") from None
    if not 0 <= ms <= MAX_QUERY_MS:
        raise BadRequest(f"{name}: {ohlc.show(value)} is outside 1970 .. 9999")
    return ms


def _symbol(request: Request) -> str:
    symbol = request.query_params.get("symbol", "").upper()
    if not is_symbol(symbol):
        raise BadRequest("symbol: required, letters and digits like BTCUSDT")
    return symbol


def _interval(request: Request, allowed: dict[str, int]) -> str:
    interval = request.query_params.get("interval", "1m")
    if interval not in allowed:
        raise BadRequest(f"interval: {ohlc.show(interval)} is not one of {', '.join(allowed)}")
    return interval


class _WriteAuth:
    """ASGI middleware: writes need the bearer token when one is set (compared in constant time), checked
    before the body is read. Reads pass, with or without a token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token and scope["type"] == "http" and scope["method"] not in READ_METHODS:
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                answer = JSONResponse({"error": "authorization: writes need 'Authorization: Bearer <ACCESS_TOKEN>'"},
                                      401, headers={"www-authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _InternalErrors:
    """ASGI middleware: an exception escaping a handler answers 500 with a short JSON error and goes to the log
    with its traceback, once (it is not re-raised, so the server does not log it again)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not started:
                answer = JSONResponse({"error": "internal error (details are in the worker's log)"}, 500)
                await answer(scope, receive, send)


def _candles_query(request: Request) -> tuple[str, str, int | None, int | None, int, str]:
    """GET /candles parameters: (symbol, interval, start, end, limit, format); BadRequest naming the one wrong."""
    symbol = _symbol(request)
    interval = _interval(request, ALL_INTERVALS)
    q = request.query_params
    start = parse_time_ms(q["start"], "start") if q.get("start") else None
    end = parse_time_ms(q["end"], "end") if q.get("end") else None
    try:
        limit = int(q.get("limit", DEFAULT_LIMIT if start is None else MAX_LIMIT))
    except ValueError:
        raise BadRequest("limit: must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit: must be between 1 and {MAX_LIMIT}")
    fmt = q.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format: json or csv")
    return symbol, interval, start, end, limit, fmt


class _CandleRoutes:
    """The candle API's handlers (one method per route), over one store."""

    def __init__(self, store: CandleStore, redis_ok: Callable[[], bool], max_body: int, max_rows: int,
                 verify: Callable[[str, int, int], dict[str, Any]] | None) -> None:
        self.store = store
        self.redis_ok = redis_ok
        self.max_body = max_body
        self.max_rows = max_rows
        self.verify = verify

    async def health(self, request: Request) -> JSONResponse:
        db = await asyncio.to_thread(self.store.ping)
        red = await asyncio.to_thread(self.redis_ok)
        ok = db and red
        return JSONResponse({"status": "ok" if ok else "degraded", "db": db, "redis": red}, 200 if ok else 503)

    async def symbols(self, request: Request) -> JSONResponse:
        return JSONResponse({"symbols": await asyncio.to_thread(self.store.symbols)})

    async def candles(self, request: Request) -> Response:
        try:
            symbol, interval, start, end, limit, fmt = _candles_query(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, 400)
        df = await asyncio.to_thread(self.store.candles, symbol, interval, start, end, limit)
        if fmt == "csv":
            filename = f"{symbol}-{interval}.csv"
            return Response(
                df.select(OUTPUT_COLUMNS).write_csv(), media_type="text/csv",
                headers={"content-disposition": f'attachment; filename="{filename}"'},
            )
        return JSONResponse({"symbol": symbol, "interval": interval, "candles": df.to_dicts()})

    async def import_candles(self, request: Request) -> JSONResponse:
        try:
            symbol = _symbol(request)
            interval = _interval(request, STORED_INTERVALS)
            body = await read_body(request, self.max_body)
            parsed = await asyncio.to_thread(parse_import_csv, body, STORED_INTERVALS[interval], self.max_rows)
            del body
            imported, skipped = await asyncio.to_thread(self.store.import_candles, symbol, interval, parsed.frame)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except BodyError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        return JSONResponse({"imported": imported, "skipped": skipped, "unit": parsed.unit,
                             "first": parsed.first, "last": parsed.last, "rows": parsed.frame.height})

    async def verify_candles(self, request: Request) -> JSONResponse:
        # worker.backfill.kline_check: ValueError is the caller's mistake, RuntimeError "cannot run now"
        if self.verify is None:
            return JSONResponse({"error": "the kline check has no REST source here (SOURCE=synthetic, or "
                                          "BACKFILL_ENABLED and KLINE_CHECK both off)"}, 503)
        try:
            symbol = _symbol(request)
            q = request.query_params
            if not q.get("start") or not q.get("end"):
                raise BadRequest("start, end: both required (open times, inclusive)")
            start, end = parse_time_ms(q["start"], "start"), parse_time_ms(q["end"], "end")
            return JSONResponse(await asyncio.to_thread(self.verify, symbol, start, end))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, 503)


def create_app(store: CandleStore, redis_ok: Callable[[], bool], settings: Settings | None = None,
               verify: Callable[[str, int, int], dict[str, Any]] | None = None,
               research: Any | None = None, book: BookReader | None = None,
               control: tuple[redis.Redis, SymbolValidator] | None = None,
               shards: ShardRegistry | None = None,
               lag: Callable[[], dict[str, int]] | None = None) -> Starlette:
    max_body = int((settings.api_max_body_mb if settings else 50.0) * 1_048_576)
    max_rows = settings.import_max_rows if settings else 1_000_000
    token = settings.access_token if settings else ""

    h = _CandleRoutes(store, redis_ok, max_body, max_rows, verify)
    return Starlette(
        routes=[
            Route("/health", h.health),
            Route("/symbols", h.symbols),
            Route("/candles", h.candles),
            Route("/candles/import", h.import_candles, methods=["POST"]),
            Route("/candles/verify", h.verify_candles, methods=["POST"]),
            # issue 9: /research/* (worker/api_research.py), when the worker runs the research thread
            *(research_routes(research, max_body) if research is not None else []),
            # issue 11: GET /book (worker/api_book.py), the book role's output in Redis
            *(book_routes(book) if book is not None else []),
            # issue 10: /symbols/active and /pairs (worker/api_control.py), the live registry in Redis
            *(control_routes(control[0], control[1], settings) if control is not None else []),
            # issue 14: GET /lag (worker/lag.py), answered here: every shard sees every stream
            *([Route("/lag", _lag_route(lag))] if lag is not None else []),
        ],
        middleware=[Middleware(_InternalErrors), Middleware(_WriteAuth, token=token),
                    # issue 14: a candle shard forwards other shards' symbols to their owner (worker/api_forward.py)
                    *([Middleware(ShardForward, shards=shards)] if shards is not None else [])],
    )


def _lag_route(lag: Callable[[], dict[str, int]]) -> Callable[[Request], Any]:
    async def handler(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await asyncio.to_thread(lag))
        except redis.RedisError as exc:  # no number is better than a wrong one: KEDA keeps the current size
            return JSONResponse({"error": f"redis: {exc}"}, 503)
    return handler


def parse_import_csv(body: bytes, interval_ms: int, max_rows: int | None = None) -> ohlc.Candles:
    """CSV bytes -> checked candles (qs_common.ohlc); BadRequest naming row (1 = first data row) and column."""
    try:
        return ohlc.validate(ohlc.read_csv(body, max_rows), interval_ms)
    except ohlc.OhlcError as exc:
        raise BadRequest(str(exc)) from None
