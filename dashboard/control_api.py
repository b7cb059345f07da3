"""The live registry as the dashboard sees it: read from Redis (`qs_common.control`), changed through the worker API.

Reads go straight to Redis (cheap, every rerun). Every change goes through the worker's control endpoints
(`/symbols/active`, `/pairs`), never into Redis directly, so the API's checks apply: the venue validation of a
new symbol (422), a symbol still used by a pair (409), a bad setting (400). The API's own message is what the
user sees, as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import redis
import streamlit as st

from dashboard import data
from qs_common import control
from qs_common.control import PairSettings
from qs_common.redis_client import connect

# The dashboard's name for a hedge-ratio source is the one `qs_analytics.hedge.HedgeSeries` takes.
REGRESSION_OF = {"ols": "OLS", "kalman": "Kalman", "huber": "Huber", "theilsen": "Theil-Sen"}
BETA_SOURCES = tuple(REGRESSION_OF)
PRICE_SOURCES = ("trade", "mid")


class Refused(RuntimeError):
    """The worker API refused a change (or did not answer); the message is fit to show as text."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Registry:
    symbols: tuple[str, ...]
    pairs: dict[str, PairSettings]
    version: int


@st.cache_resource
def _raw_client(url: str) -> redis.Redis:
    # qs_common.control reads the hash as bytes (its keys are compared as bytes), so not the dashboard's
    # decoding client
    return connect(url, data.settings().redis_cluster, socket_timeout=2, socket_connect_timeout=2)


def registry() -> Registry:
    """Active symbols, pairs (id `Y/X` -> settings) and the registry version, read from Redis."""
    r = _raw_client(data.settings().redis_url)
    return Registry(
        symbols=data.redis_call(control.active_symbols, r),
        pairs=data.redis_call(control.active_pairs, r),
        version=data.redis_call(control.version, r),
    )


@st.cache_resource
def _seeded(redis_url: str) -> bool:
    """Seed the registry from SYMBOLS/PAIRS once per Redis, as every process does at start-up (only the first
    process wins), so a dashboard started before the worker still shows the configured pairs."""
    return control.seed(_raw_client(redis_url), data.settings())


def seed() -> None:
    data.redis_call(_seeded, data.settings().redis_url)


def _send(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = data.settings().api_url
    try:
        resp = data.api().request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise Refused(f"The worker API at {url} is not answering ({type(exc).__name__}).") from None
    if resp.status_code >= 400:
        raise Refused(f"{_error(resp)} (HTTP {resp.status_code})", resp.status_code)
    try:
        answer = resp.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _error(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:300]
    return str(body)[:300]


def add_symbol(symbol: str) -> dict[str, Any]:
    return _send("POST", "/symbols/active", {"symbol": symbol.strip().upper()})


def remove_symbol(symbol: str) -> dict[str, Any]:
    return _send("DELETE", f"/symbols/active/{control.normal_symbol(symbol)}")


def add_pair(y: str, x: str, **settings: Any) -> dict[str, Any]:
    return _send("POST", "/pairs", {"y": y, "x": x, **settings})


def update_pair(pid: str, changes: dict[str, Any]) -> dict[str, Any]:
    y, x = control.parse_pair_id(pid)
    return _send("PUT", f"/pairs/{y}-{x}", changes)


def remove_pair(pid: str) -> dict[str, Any]:
    y, x = control.parse_pair_id(pid)
    return _send("DELETE", f"/pairs/{y}-{x}")


def changes(current: PairSettings, wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` that differ from `current`: the partial body of `PUT /pairs/Y-X`."""
    now = current.model_dump()
    return {k: v for k, v in wanted.items() if k in now and now[k] != v}
