"""`GET /book?symbol=BTCUSDT&depth=20` on the worker API: the book role's newest top levels of a symbol.

Answer: {"symbol", "last_update_id", "event_time", "stale", "bids": [[price, qty], ...], "asks": [...]}, prices
and quantities as Binance's exact decimal text, bids descending, asks ascending, at most `depth` levels a side
(default 20; the book role keeps BOOK_LEVELS of them in `book:depth:{SYMBOL}`). 404 while no book role has
written the symbol's book (it needs ingest with DEPTH=true); 400 for a bad symbol or depth.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qs_common import keys
from qs_common.symbols import is_symbol

DEFAULT_DEPTH = 20
MAX_DEPTH = 5_000

BookReader = Callable[[str], bytes | str | None]  # key -> the stored JSON (redis GET)


def book_routes(read: BookReader) -> list[Route]:
    async def book(request: Request) -> JSONResponse:
        q = request.query_params
        symbol = q.get("symbol", "").upper()
        if not is_symbol(symbol):
            return JSONResponse({"error": "symbol: required, letters and digits like BTCUSDT"}, 400)
        raw_depth = q.get("depth", str(DEFAULT_DEPTH))
        if not raw_depth.isdigit() or not 1 <= int(raw_depth) <= MAX_DEPTH:
            return JSONResponse({"error": f"depth: an integer from 1 to {MAX_DEPTH}"}, 400)
        depth = int(raw_depth)
        raw = await asyncio.to_thread(read, keys.book_depth_key(symbol))
        if raw is None:
            return JSONResponse({"error": f"no order book for {symbol} yet (the worker's book role builds it from "
                                          "stream:depth, which ingest fills with DEPTH=true)"}, 404)
        doc = json.loads(raw)
        return JSONResponse({"symbol": doc["symbol"], "last_update_id": doc["last_update_id"],
                             "event_time": doc["event_time"], "stale": doc["stale"],
                             "bids": doc["bids"][:depth], "asks": doc["asks"][:depth]})

    return [Route("/book", book)]
