"""The live control routes of the worker API (issue 10; mounted by worker/api.py's `create_app`).

GET    /symbols/active                 {"symbols": [...]}, the active set every process follows
POST   /symbols/active                 body {"symbol": "SOLUSDT"}: checked on the venue, then added
DELETE /symbols/active/SOLUSDT         stop watching it (its stored history stays); 409 while a pair uses it
GET    /pairs                          {"pairs": [PairSettings + "id"]}
POST   /pairs                          body {"y", "x", other PairSettings fields optional (the deployment's
                                       engine settings by default)}: legs checked on the venue, pair added/replaced
PUT    /pairs/SOLUSDT-BTCUSDT          partial body: the fields to change
DELETE /pairs/SOLUSDT-BTCUSDT          remove the pair (its legs stay active)

Errors: 400 {"error"} for bad input, 404 for a pair that is not active (PUT), 409 for a leg still in use, 422 for a
symbol the venue does not list or that does not trade, 503 when the venue cannot be asked (nothing is added
unchecked). Writes need the bearer token (the app's write guard). The registry is qs_common/control.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qs_common import control
from worker.api_body import BodyError, read_body
from worker.venue_check import NotTrading, SymbolValidator, UnknownSymbol, VenueUnavailable

MAX_BODY = 65_536  # a pair's settings are a few hundred bytes


def _error(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": msg}, status)


def _pair_json(ps: control.PairSettings, **extra: Any) -> dict[str, Any]:
    return {"id": ps.id, **ps.model_dump(), **extra}


async def _json_object(request: Request) -> dict[str, Any]:
    body = await read_body(request, MAX_BODY)  # BodyError (413, 415, 400) keeps its status
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise control.ControlError(f"body: not JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise control.ControlError("body: a JSON object is required")
    return value


def _leg(body: dict[str, Any], name: str) -> str:
    if name not in body:
        raise control.ControlError(f"{name}: required, a symbol like SOLUSDT")
    try:
        return control.normal_symbol(body[name])
    except control.ControlError as exc:
        raise control.ControlError(f"{name}: {exc}") from None


class ControlRoutes:
    """One handler per route over the registry's Redis and the venue check."""

    def __init__(self, r: redis.Redis, validator: SymbolValidator, settings: object) -> None:
        self.r = r
        self.validator = validator
        self.settings = settings

    async def _guard(self, request: Request, work: Any) -> JSONResponse:
        """Run `work(request)`, mapping the registry's and the venue check's refusals to their status codes."""
        try:
            return await work(request)
        except (UnknownSymbol, NotTrading) as exc:
            return _error(str(exc), 422)
        except VenueUnavailable as exc:
            return _error(str(exc), 503)
        except control.InUse as exc:
            return _error(str(exc), 409)
        except control.UnknownPair as exc:
            return _error(str(exc), 404)
        except control.ControlError as exc:
            return _error(str(exc), 400)
        except BodyError as exc:
            return _error(str(exc), exc.status)

    # -- symbols -----------------------------------------------------------------------------------------
    async def list_symbols(self, request: Request) -> JSONResponse:
        return JSONResponse({"symbols": list(await asyncio.to_thread(control.active_symbols, self.r))})

    async def add_symbol(self, request: Request) -> JSONResponse:
        async def work(req: Request) -> JSONResponse:
            body = await _json_object(req)
            if set(body) != {"symbol"}:
                raise control.ControlError('body: exactly {"symbol": "SOLUSDT"}')
            sym = await self._checked(body["symbol"])
            added = await asyncio.to_thread(control.add_symbol, self.r, sym)
            return JSONResponse({"symbol": sym, "added": added, "validated": self.validator.mode})

        return await self._guard(request, work)

    async def remove_symbol(self, request: Request) -> JSONResponse:
        async def work(req: Request) -> JSONResponse:
            sym = control.normal_symbol(req.path_params["symbol"])
            removed = await asyncio.to_thread(control.remove_symbol, self.r, sym)
            return JSONResponse({"symbol": sym, "removed": removed})

        return await self._guard(request, work)

    async def _checked(self, symbol: object) -> str:
        """The symbol as stored; an active one was checked when it was added, so it is not asked again."""
        sym = control.normal_symbol(symbol)
        active = await asyncio.to_thread(self.r.sismember, control.SYMBOLS_KEY, sym)
        return sym if active else await asyncio.to_thread(self.validator.check, sym)

    # -- pairs -------------------------------------------------------------------------------------------
    async def list_pairs(self, request: Request) -> JSONResponse:
        pairs = await asyncio.to_thread(control.active_pairs, self.r)
        return JSONResponse({"pairs": [_pair_json(ps) for ps in pairs.values()]})

    async def add_pair(self, request: Request) -> JSONResponse:
        async def work(req: Request) -> JSONResponse:
            body = await _json_object(req)
            y, x = _leg(body, "y"), _leg(body, "x")
            ps = control.pair_from_body(body, control.default_pair(self.settings, y, x) if y != x else None)
            for leg in (ps.y, ps.x):
                await self._checked(leg)
            added = await asyncio.to_thread(control.put_pair, self.r, ps)
            return JSONResponse(_pair_json(ps, added=added))

        return await self._guard(request, work)

    async def update_pair(self, request: Request) -> JSONResponse:
        async def work(req: Request) -> JSONResponse:
            body = await _json_object(req)
            ps = await asyncio.to_thread(control.update_pair, self.r, req.path_params["pair"], body)
            return JSONResponse(_pair_json(ps))

        return await self._guard(request, work)

    async def remove_pair(self, request: Request) -> JSONResponse:
        async def work(req: Request) -> JSONResponse:
            y, x = control.parse_pair_id(req.path_params["pair"])
            removed = await asyncio.to_thread(control.remove_pair, self.r, control.pair_id(y, x))
            return JSONResponse({"id": control.pair_id(y, x), "removed": removed})

        return await self._guard(request, work)


def control_routes(r: redis.Redis, validator: SymbolValidator, settings: object) -> list[Route]:
    h = ControlRoutes(r, validator, settings)
    return [
        Route("/symbols/active", h.list_symbols, methods=["GET"]),
        Route("/symbols/active", h.add_symbol, methods=["POST"]),
        Route("/symbols/active/{symbol}", h.remove_symbol, methods=["DELETE"]),
        Route("/pairs", h.list_pairs, methods=["GET"]),
        Route("/pairs", h.add_pair, methods=["POST"]),
        Route("/pairs/{pair}", h.update_pair, methods=["PUT"]),
        Route("/pairs/{pair}", h.remove_pair, methods=["DELETE"]),
    ]
