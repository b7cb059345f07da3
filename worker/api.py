"""The worker's small HTTP API: history from the DuckDB file it alone owns.

GET /health, GET /symbols, GET /candles (json or csv), POST /candles/import (csv).
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qs_common.times import epoch_to_ms, iso_to_ms
from worker.candles import ALL_INTERVALS, STORED_INTERVALS
from worker.store import OUTPUT_COLUMNS, CandleStore

MAX_LIMIT = 100_000
DEFAULT_LIMIT = 1_000
MAX_IMPORT_BYTES = 50 * 1024 * 1024


class BadRequest(ValueError):
    pass


def parse_time_ms(value: str, name: str) -> int:
    """Milliseconds (or µs/ns, told apart by size) since the epoch, or ISO-8601 (naive means UTC)."""
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return epoch_to_ms(int(text))
    try:
        return iso_to_ms(text)
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is neither epoch milliseconds nor ISO-8601") from None


def _symbol(request: Request) -> str:
    symbol = request.query_params.get("symbol", "").upper()
    if not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
        raise BadRequest("symbol: required, letters and digits like BTCUSDT")
    return symbol


def _interval(request: Request, allowed: dict[str, int]) -> str:
    interval = request.query_params.get("interval", "1m")
    if interval not in allowed:
        raise BadRequest(f"interval: {interval!r} is not one of {', '.join(allowed)}")
    return interval


def create_app(store: CandleStore, redis_ok: Callable[[], bool]) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        db = await asyncio.to_thread(store.ping)
        red = await asyncio.to_thread(redis_ok)
        ok = db and red
        return JSONResponse({"status": "ok" if ok else "degraded", "db": db, "redis": red}, 200 if ok else 503)

    async def symbols(request: Request) -> JSONResponse:
        return JSONResponse({"symbols": await asyncio.to_thread(store.symbols)})

    async def candles(request: Request) -> Response:
        try:
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
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, 400)
        df = await asyncio.to_thread(store.candles, symbol, interval, start, end, limit)
        if fmt == "csv":
            filename = f"{symbol}-{interval}.csv"
            return Response(
                df.select(OUTPUT_COLUMNS).write_csv(), media_type="text/csv",
                headers={"content-disposition": f'attachment; filename="{filename}"'},
            )
        return JSONResponse({"symbol": symbol, "interval": interval, "candles": df.to_dicts()})

    async def import_candles(request: Request) -> JSONResponse:
        try:
            symbol = _symbol(request)
            interval = _interval(request, STORED_INTERVALS)
            body = await request.body()
            if len(body) > MAX_IMPORT_BYTES:
                raise BadRequest(f"body: larger than {MAX_IMPORT_BYTES} bytes")
            frame = parse_import_csv(body)
            imported, skipped = await asyncio.to_thread(store.import_candles, symbol, interval, frame)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"imported": imported, "skipped": skipped})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/symbols", symbols),
            Route("/candles", candles),
            Route("/candles/import", import_candles, methods=["POST"]),
        ]
    )


IMPORT_REQUIRED = ["open_time", "open", "high", "low", "close", "volume"]
IMPORT_OPTIONAL = ["quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"]


def parse_import_csv(body: bytes) -> pl.DataFrame:
    """The API's own CSV layout -> typed candles; a bad cell names its row (1 = first data row) and column."""
    try:
        raw = pl.read_csv(io.BytesIO(body), infer_schema=False)
    except Exception as exc:  # polars raises several error types for unreadable CSV
        raise BadRequest(f"body: not a readable CSV ({exc.__class__.__name__})") from None
    missing = [c for c in IMPORT_REQUIRED if c not in raw.columns]
    if missing:
        raise BadRequest(f"header: missing column(s) {', '.join(missing)}")
    out = {}
    for col in IMPORT_REQUIRED + [c for c in IMPORT_OPTIONAL if c in raw.columns]:
        dtype = pl.Int64 if col in ("open_time", "trades") else pl.Decimal(38, 16 if "quote" in col else 8)
        series = raw[col].str.strip_chars()
        typed = series.cast(dtype, strict=False)
        bad = (typed.is_null() & series.is_not_null()) | series.is_null()
        if bad.any():
            row = int(bad.arg_max() or 0) + 1
            raise BadRequest(f"row {row}, column {col}: {raw[col][row - 1]!r} is not a valid number")
        out[col] = typed
    return pl.DataFrame(out)
