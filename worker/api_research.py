"""The research routes of the worker API (mounted by worker/api.py's `create_app`).

POST /research/scan                      run a pair scan now (JSON body, every field optional); a write
GET  /research/scan?run=latest|ID&format=json|csv   a stored run and its rows, best first
GET  /research/scan/runs                 the newest runs (parameters, outcome)
POST /research/backtest                  the z-score backtest on stored candles or uploaded rows; a write
GET  /research/garch[?symbol=]           the newest GARCH(1,1) fit per symbol
POST /research/garch[?symbol=]           refit now; a write

POSTs need the API's bearer token when one is set (the app's write guard covers every non-GET method).
The API's CSV is data for scripts (cells as stored); the dashboard's downloads go through dashboard/safe.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qs_common.symbols import is_symbol
from worker import research_backtest
from worker.api_body import BodyError, read_body
from worker.research_service import ResearchService
from worker.research_store import RESULT_COLUMNS, RUN_COLUMNS

MAX_JSON_BYTES = 16 * 1_048_576  # a backtest upload of 200,000 rows fits


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _error(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": msg}, status)


async def _json_body(request: Request, limit: int, optional: bool = False) -> Any:
    body = await read_body(request, limit)
    if not body.strip():
        if optional:
            return {}
        raise ValueError("body: a JSON object is required")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body: not JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise ValueError("body: must be a JSON object")
    return value


def _symbols(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("symbols: a list of symbols or a comma list")
    out = []
    for s in items:
        sym = str(s).strip().upper()
        if not is_symbol(sym):
            raise ValueError(f"symbols: {str(s)[:40]!r} is not a symbol (letters and digits, like BTCUSDT)")
        out.append(sym)
    return out


def _int_or_none(body: dict[str, Any], name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | str) or not re.fullmatch(r"-?[0-9]{1,9}", str(v).strip()):
        raise ValueError(f"{name}: must be an integer, got {str(v)[:40]!r}")
    return int(str(v).strip())


def scan_csv(run: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line per pair; the run's parameters repeat on every line so a file carries what produced it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    meta = ("run_id", "started_ms", "interval", "lookback", "n_points", "first_open_ms", "last_open_ms")
    w.writerow([*meta, "symbols", "test", *RESULT_COLUMNS])
    fixed = [run[k] for k in meta] + [" ".join(run["symbols"]), run["params"].get("test", "")]
    for r in rows:
        w.writerow([*fixed, *("" if r[c] is None else (repr(r[c]) if isinstance(r[c], float) else r[c])
                              for c in RESULT_COLUMNS)])  # fmt: skip
    return buf.getvalue()


def _scan_body(body: dict[str, Any]) -> tuple[list[str] | None, str | None]:
    """POST /research/scan body -> (symbols, interval); ValueError naming the field."""
    unknown = set(body) - {"symbols", "interval", "lookback", "max_lag"}
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: unknown field (use symbols, interval, lookback, max_lag)")
    syms = _symbols(body.get("symbols"))
    interval = body.get("interval")
    if interval is not None and not isinstance(interval, str):
        raise ValueError("interval: must be text like 1m")
    return syms, interval


def _scan_query(request: Request) -> tuple[str, str]:
    """GET /research/scan parameters -> (run, format); ValueError naming the parameter."""
    which = request.query_params.get("run", "latest")
    fmt = request.query_params.get("format", "json")
    if which != "latest" and not re.fullmatch(r"[0-9]{1,12}", which):
        raise ValueError("run: latest or a run id")
    if fmt not in ("json", "csv"):
        raise ValueError("format: json or csv")
    return which, fmt


def _symbol_param(request: Request) -> str | None:
    sym = request.query_params.get("symbol", "").strip().upper()
    if sym and not is_symbol(sym):
        raise ValueError("symbol: letters and digits like BTCUSDT")
    return sym or None


async def _garch_fits(request: Request, fits_of: Callable[[str | None], list[dict[str, Any]]]) -> JSONResponse:
    """GET and POST /research/garch: the optional `symbol` parameter, then the fits (stored, or fitted now)."""
    try:
        sym = _symbol_param(request)
    except ValueError as exc:
        return _error(str(exc))
    fits = await asyncio.to_thread(fits_of, sym)
    return JSONResponse({"fits": [{k: _finite(v) for k, v in f.items()} for f in fits]})


class _ResearchRoutes:
    """The /research/* handlers (one method per route), over one research service."""

    def __init__(self, svc: ResearchService, max_body: int) -> None:
        self.svc = svc
        self.rs = svc.rs
        self.max_body = max_body

    async def post_scan(self, request: Request) -> JSONResponse:
        try:
            body = await _json_body(request, min(self.max_body, MAX_JSON_BYTES), optional=True)
            syms, interval = _scan_body(body)
            run = await asyncio.to_thread(self.svc.scan, syms, interval, _int_or_none(body, "lookback"), "demand",
                                          _int_or_none(body, "max_lag"))  # fmt: skip
        except BodyError as exc:
            return _error(str(exc), exc.status)
        except ValueError as exc:
            return _error(str(exc))
        return JSONResponse({"run": run})

    async def get_scan(self, request: Request) -> Response:
        try:
            which, fmt = _scan_query(request)
        except ValueError as exc:
            return _error(str(exc))
        run = await asyncio.to_thread(self.rs.run, which)
        if run is None:
            return _error(f"run: no {'finished scan yet' if which == 'latest' else 'scan ' + which}", 404)
        frame = await asyncio.to_thread(self.rs.results, run["run_id"])
        rows = frame.to_dicts()
        if fmt == "csv":
            name = f"scan-{run['run_id']}-{run['interval']}.csv"
            return Response(scan_csv(run, rows), media_type="text/csv",
                            headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip
        return JSONResponse({"run": run, "columns": list(RESULT_COLUMNS),
                             "rows": [{k: _finite(v) for k, v in r.items()} for r in rows]})  # fmt: skip

    async def get_runs(self, request: Request) -> JSONResponse:
        return JSONResponse({"runs": await asyncio.to_thread(self.rs.runs), "columns": list(RUN_COLUMNS)})

    async def post_backtest(self, request: Request) -> JSONResponse:
        try:
            body = await _json_body(request, min(self.max_body, MAX_JSON_BYTES))
            req = research_backtest.parse(body)
            return JSONResponse(await asyncio.to_thread(research_backtest.run, req, self.rs))
        except BodyError as exc:
            return _error(str(exc), exc.status)
        except ValueError as exc:
            return _error(str(exc))

    async def get_garch(self, request: Request) -> JSONResponse:
        return await _garch_fits(request, self.rs.garch_latest)

    async def post_garch(self, request: Request) -> JSONResponse:
        return await _garch_fits(request, lambda sym: self.svc.garch([sym] if sym else None))


def research_routes(svc: ResearchService, max_body: int) -> list[Route]:
    h = _ResearchRoutes(svc, max_body)
    return [
        Route("/research/scan", h.post_scan, methods=["POST"]),
        Route("/research/scan", h.get_scan, methods=["GET"]),
        Route("/research/scan/runs", h.get_runs, methods=["GET"]),
        Route("/research/backtest", h.post_backtest, methods=["POST"]),
        Route("/research/garch", h.get_garch, methods=["GET"]),
        Route("/research/garch", h.post_garch, methods=["POST"]),
    ]
