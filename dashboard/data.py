"""Every read (and the few writes) the dashboard does: Redis and the worker HTTP API.

Clients are `st.cache_resource` (one per process); reads of history are `st.cache_data` with a short TTL.
Live Redis values (forming candle, top of book, status) are single GETs, cheap enough to do on every
fragment run. A failure becomes `Unavailable` with a plain sentence; pages show it instead of a trace.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, cast

import httpx
import pandas as pd
import redis
import streamlit as st
from pydantic import ValidationError

from qs_common import intervals, keys, status
from qs_common.redis_client import connect, get_many
from qs_common.settings import Settings, describe_error

CANDLE_FLOATS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume", "vwap")
INTERVAL_MS = intervals.INTERVAL_MS


class Unavailable(RuntimeError):
    """A data source did not answer; the message is fit to show as is."""


@st.cache_resource
def _settings() -> Settings | str:
    try:
        return Settings()  # type: ignore[call-arg]  # pydantic-settings fills the fields from the environment
    except ValidationError as err:
        return "; ".join(describe_error(err))


def settings() -> Settings:
    """The process's settings (read once); a bad variable becomes Unavailable naming it."""
    value = _settings()
    if isinstance(value, str):
        raise Unavailable(f"The dashboard's settings are invalid: {value}")
    return value


@st.cache_resource
def redis_client(url: str) -> redis.Redis:
    # Anything in Redis may hold bytes that are not UTF-8 (a dead letter keeps the frame as received):
    # shown as \x.. escapes, never a UnicodeDecodeError.
    return connect(  # REDIS_CLUSTER: url is a seed node of a Redis Cluster
        url, settings().redis_cluster, decode_responses=True, encoding_errors="backslashreplace", socket_timeout=2,
        socket_connect_timeout=2,
    )


@st.cache_resource
def http_client(api_url: str, token: str = "") -> httpx.Client:
    """The worker API client; with ACCESS_TOKEN set, every request carries it as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api_url, timeout=httpx.Timeout(5.0, connect=2.0), headers=headers)


def _api_client(api_url: str) -> httpx.Client:
    return http_client(api_url, settings().access_token)


def rds() -> redis.Redis:
    return redis_client(settings().redis_url)


def api() -> httpx.Client:
    return _api_client(settings().api_url)


def redis_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except redis.RedisError as exc:
        where = redacted(settings().redis_url)
        raise Unavailable(f"Redis at {where} is not answering ({type(exc).__name__}).") from None


def redacted(url: str) -> str:
    """A URL fit to show a visitor: its password (compose puts REDIS_PASSWORD into REDIS_URL) replaced by ***."""
    return re.sub(r"^([a-z]+://[^:@/]*:)[^@/]*@", r"\1***@", url)


def candles_frame(csv_text: str) -> pd.DataFrame:
    """The API's CSV candles as a frame: open_time int64 ms, prices and volumes float."""
    if not csv_text.strip():
        return empty_candles()
    frame = pd.read_csv(io.StringIO(csv_text), dtype={"source": "string"})
    frame["open_time"] = frame["open_time"].astype("int64")
    for col in CANDLE_FLOATS:
        if col in frame:
            frame[col] = frame[col].astype("float64")
    return frame


def empty_candles() -> pd.DataFrame:
    cols = {"open_time": "int64", **dict.fromkeys(("open", "high", "low", "close", "volume"), "float64")}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def fetch_candles(
    api_url: str,
    symbol: str,
    interval: str,
    limit: int,
    start: int | None = None,
    end: int | None = None,
    bucket: int = 0,
) -> pd.DataFrame:
    """History from `GET /candles` (CSV). `bucket` is only part of the cache key: callers change it to refetch."""
    params: dict[str, str | int] = {"symbol": symbol, "interval": interval, "limit": limit, "format": "csv"}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    try:
        resp = _api_client(api_url).get("/candles", params=params)
    except httpx.HTTPError as exc:
        raise Unavailable(f"The worker API at {api_url} is not answering ({type(exc).__name__}).") from None
    if resp.status_code != 200:
        raise Unavailable(f"The worker API answered {resp.status_code} for {symbol} {interval}: {_error_text(resp)}")
    return candles_frame(resp.text)


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text[:200]))
    except (ValueError, AttributeError):
        return resp.text[:200]


@st.cache_data(ttl=10, show_spinner=False)
def stored_symbols() -> list[str]:
    """The symbols with stored candles, sorted; Unavailable without the worker API."""
    return sorted({s["symbol"] for s in fetch_symbols(settings().api_url)})


def fetch_symbols(api_url: str) -> list[dict[str, Any]]:
    try:
        resp = _api_client(api_url).get("/symbols")
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"The worker API at {api_url} is not answering ({type(exc).__name__}).") from None
    return list(body.get("symbols", body) if isinstance(body, dict) else body)


def import_candles(symbol: str, interval: str, csv_body: str) -> tuple[int, int]:
    """`POST /candles/import`; (imported, skipped as already stored), or Unavailable with the API's message."""
    url = settings().api_url
    try:
        resp = api().post(
            "/candles/import",
            params={"symbol": symbol, "interval": interval},
            content=csv_body.encode(),
            headers={"content-type": "text/csv"},
        )
    except httpx.HTTPError as exc:
        raise Unavailable(f"The worker API at {url} is not answering ({type(exc).__name__}).") from None
    if resp.status_code != 200:
        raise Unavailable(f"Import refused ({resp.status_code}): {_error_text(resp)}")
    body = resp.json()
    return int(body.get("imported", 0)), int(body.get("skipped", 0))


def _json_get(key: str) -> dict[str, Any] | None:
    return _loads(redis_call(rds().get, key))


def forming_candles(symbols: list[str], interval: str) -> dict[str, dict[str, Any] | None]:
    """Several symbols in one round trip (MGET)."""
    raws = redis_call(get_many, rds(), [keys.forming_candle_key(s, interval) for s in symbols])
    return {s: _loads(raw) for s, raw in zip(symbols, raws, strict=True)}


def books(symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    raws = redis_call(get_many, rds(), [keys.latest_book_key(s) for s in symbols])
    return {s: _loads(raw) for s, raw in zip(symbols, raws, strict=True)}


def symbol_records(symbols: list[str]) -> dict[str, dict[str, Any]]:
    """Per symbol, the engine's `symbol:stats` with the newest `symbol:garch` fit over it (one MGET);
    a symbol without either has an empty record."""
    if not symbols:
        return {}
    names = [k for s in symbols for k in (keys.symbol_stats_key(s), keys.garch_key(s))]
    raws = redis_call(get_many, rds(), names)
    out: dict[str, dict[str, Any]] = {}
    for i, sym in enumerate(symbols):
        out[sym] = {**(_loads(raws[2 * i]) or {}), **(_loads(raws[2 * i + 1]) or {})}  # the fit's own key is the newest
    return out


def _loads(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def statuses() -> dict[str, dict[str, Any]]:
    """Every live status record; one that is not a JSON object is left out rather than failing the page."""
    return redis_call(status.read_statuses, rds())


def stream_last(stream: str, count: int) -> list[tuple[str, dict[str, str]]]:
    """The newest `count` entries, oldest first."""
    return list(reversed(redis_call(rds().xrevrange, stream, "+", "-", count=count)))


def stream_length(stream: str) -> int:
    return int(redis_call(rds().xlen, stream))


def alert_rules() -> dict[str, str]:
    return dict(redis_call(rds().hgetall, keys.ALERT_RULES))


def save_alert_rule(rule_id: str, rule_json: str) -> None:
    redis_call(rds().hset, keys.ALERT_RULES, rule_id, rule_json)


def delete_alert_rule(rule_id: str) -> None:
    redis_call(rds().hdel, keys.ALERT_RULES, rule_id)


# ---- pair research (issue 9): the worker's /research/* API -------------------------------------------------
RESEARCH_TIMEOUT = httpx.Timeout(120.0, connect=2.0)  # a 100-symbol scan or a sweep takes seconds, not 5


def _research(method: str, path: str, **kwargs: Any) -> Any:
    """One /research call; Unavailable with the API's own message (a 400 names the field)."""
    url = settings().api_url
    try:
        resp = api().request(method, path, timeout=RESEARCH_TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise Unavailable(f"The worker API at {url} is not answering ({type(exc).__name__}).") from None
    if resp.status_code == 404 and path == "/research/scan":
        return None
    if resp.status_code != 200:
        raise Unavailable(f"The worker API answered {resp.status_code} for {path}: {_error_text(resp)}")
    try:
        return resp.json()
    except ValueError:
        raise Unavailable(f"The worker API sent something that is not JSON for {path}.") from None


def scan_run(run: str = "latest") -> dict[str, Any] | None:
    """A stored scan (`run` and its `rows`, best first), or None when no scan has finished yet."""
    return cast(dict[str, Any] | None, _research("GET", "/research/scan", params={"run": run}))


def scan_runs() -> list[dict[str, Any]]:
    return list(_research("GET", "/research/scan/runs").get("runs", []))


def run_scan(symbols: list[str], interval: str, lookback: int) -> dict[str, Any]:
    """`POST /research/scan`: the finished run's record (its `error` says why a run produced no rows)."""
    body = {"symbols": symbols, "interval": interval, "lookback": lookback}
    return dict(_research("POST", "/research/scan", json=body)["run"])


def run_backtest(request: dict[str, Any]) -> dict[str, Any]:
    """`POST /research/backtest` (see worker/research_backtest.py for the request)."""
    return dict(_research("POST", "/research/backtest", json=request))


def garch_fits(symbol: str | None = None) -> list[dict[str, Any]]:
    params = {"symbol": symbol} if symbol else {}
    return list(_research("GET", "/research/garch", params=params).get("fits", []))


def refit_garch(symbol: str | None = None) -> list[dict[str, Any]]:
    params = {"symbol": symbol} if symbol else {}
    return list(_research("POST", "/research/garch", params=params).get("fits", []))
