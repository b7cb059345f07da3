"""Any candle shard's API answers for every symbol (issue 14): its own from its DuckDB file, the others forwarded.

An ASGI middleware in front of the worker API of a candle shard (`SHARD=k/N`, N > 1). A request about one symbol
(`/candles`, `/candles/import`, `/candles/verify` with `symbol=`) that another shard owns is sent on, unchanged
(method, path, query, body, the authorization and content headers), to the owner's advertised address found in
`shards:candles` (worker/shards.py), and its answer passed back. `/symbols` answers the union of every registered
shard's stored symbols. A forwarded request carries `x-qs-forwarded: 1` and is always answered where it arrives,
so two shards that disagree about an owner (a resize in progress) cannot bounce a request between them.

503 `{"error"}` naming the shard when the owner is not registered or does not answer within FORWARD_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.shards import OwnerUnavailable, ShardEntry, ShardRegistry

log = logging.getLogger(__name__)

FORWARDED = "x-qs-forwarded"
FORWARD_TIMEOUT_S = 30.0  # a month of 1s candles takes seconds to read and send
SYMBOL_PATHS = frozenset({"/candles", "/candles/import", "/candles/verify"})
PASSED_HEADERS = ("authorization", "content-type", "content-encoding", "accept")
ANSWER_HEADERS = ("content-type", "content-disposition")


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class ShardForward:
    """The middleware; `client` is made at the first forward (in the server's event loop)."""

    def __init__(self, app: ASGIApp, shards: ShardRegistry) -> None:
        self.app = app
        self.shards = shards
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S)
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or Headers(scope=scope).get(FORWARDED):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/symbols" and scope["method"] == "GET":
            await self._all_symbols(scope, receive, send)
            return
        symbol = QueryParams(scope.get("query_string", b"")).get("symbol", "").strip().upper()
        if path not in SYMBOL_PATHS or not symbol or self.shards.owns(symbol):
            await self.app(scope, receive, send)  # a bad or missing symbol is the route's 400
            return
        try:
            owner = await asyncio.to_thread(self.shards.owner, symbol)
        except OwnerUnavailable as exc:
            await JSONResponse({"error": str(exc)}, 503)(scope, receive, send)
            return
        answer = await self._forward(owner, scope, await _body(receive))
        await answer(scope, receive, send)

    async def _forward(self, owner: ShardEntry, scope: Scope, body: bytes) -> Response:
        headers = Headers(scope=scope)
        sent = {name: headers[name] for name in PASSED_HEADERS if name in headers}
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{owner.address}{scope['path']}" + (f"?{query}" if query else "")
        try:
            resp = await self.client.request(scope["method"], url, content=body or None,
                                             headers={**sent, FORWARDED: "1"})
        except httpx.HTTPError as exc:
            log.warning("forward to candle shard %s at %s failed: %s", owner.shard, owner.address, exc)
            return JSONResponse({"error": f"candle shard {owner.shard} at {owner.address} did not answer: "
                                          f"{type(exc).__name__}"}, 503)
        kept = {name: resp.headers[name] for name in ANSWER_HEADERS if name in resp.headers}
        return Response(resp.content, resp.status_code, headers=kept)

    async def _all_symbols(self, scope: Scope, receive: Receive, send: Send) -> None:
        """This shard's /symbols, then every other registered shard's, in one list (a shard that does not answer
        is named in `unavailable`)."""
        own = await self._local_json(scope, receive)
        symbols: list[Any] = list(own.get("symbols", []))
        unavailable = []
        for entry in await asyncio.to_thread(self.shards.others):
            try:
                resp = await self.client.get(f"{entry.address}/symbols", headers={FORWARDED: "1"})
                resp.raise_for_status()
                symbols.extend(resp.json().get("symbols", []))
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("/symbols of candle shard %s failed: %s", entry.shard, exc)
                unavailable.append(entry.shard)
        body: dict[str, Any] = {"symbols": symbols}
        if unavailable:
            body["unavailable"] = unavailable
        await JSONResponse(body)(scope, receive, send)

    async def _local_json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        """Run the request through the app here and read its JSON answer."""
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        try:
            doc = json.loads(b"".join(parts))
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
