"""A local stand-in for Binance's REST depth endpoint (`GET /api/v3/depth`, `/fapi/v1/depth`), on http.server.

It serves, per symbol, a list of snapshots in order: request n of a symbol gets snapshot n (the last one once
the list is used up), in Binance's shape `{"lastUpdateId", "bids", "asks"}` with exact decimal text and the
`X-MBX-USED-WEIGHT-1M` header. An unknown symbol is a 400 as Binance answers it. Requests are logged.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from qs_common.depth import DepthSnapshot

PATHS = ("/api/v3/depth", "/fapi/v1/depth")
WEIGHT = 250


class DepthServer:
    def __init__(self, snapshots: dict[str, list[DepthSnapshot]]) -> None:
        self.snapshots = snapshots
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, body = server.answer(url.path, params)
                data = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-mbx-used-weight-1m", str(WEIGHT * len(server.requests)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.requests.append({"path": path, **params})
            symbol = params.get("symbol", "")
            if path not in PATHS:
                return 404, {"code": -1, "msg": "not found"}
            if symbol not in self.snapshots:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            n = self._served.get(symbol, 0)
            self._served[symbol] = n + 1
            snaps = self.snapshots[symbol]
            snap = snaps[min(n, len(snaps) - 1)]
            return 200, {"lastUpdateId": snap.last_update_id, "bids": [list(lv) for lv in snap.bids],
                         "asks": [list(lv) for lv in snap.asks]}

    def __enter__(self) -> DepthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
