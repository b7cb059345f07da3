"""HTTP for the klines REST endpoint (paths, weights and limits in `qs_common.venues.binance.config`), within the
weight budget, with retries and backoff.

Binance counts request weight per IP per minute and reports the running total in `X-MBX-USED-WEIGHT-1M`.
The client stays under its own, lower budget (`rest_weight_limit`) by waiting for the next minute; a 429
(too many requests) or 418 (IP banned after ignoring 429s) is obeyed by waiting `Retry-After` seconds.
Network errors and 5xx answers are retried with full-jitter exponential backoff. Every wait ends early on
stop. One request per page of up to 1,000 klines.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from qs_common.venues.binance.config import (
    KLINES_ENDPOINTS,
    KLINES_PAGE_LIMIT,
    RATE_LIMITED,
    WEIGHT_HEADER,
    Venue,
    backoff_delay,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
RETRY_BASE_S = 1.0  # the first retry waits up to 2 s, the fifth up to 32 s (within backoff_max_s)


class FetchError(RuntimeError):
    """The venue did not answer usefully after retries; try again later."""


class RejectedRequest(FetchError):
    """A 4xx other than 429/418: the request itself is wrong (unknown symbol or interval); do not retry."""

    def __init__(self, message: str, status: int = 400, text: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.text = text  # the venue's answer (Binance: {"code": ..., "msg": ...}), at most 2,000 characters


QUICK_ATTEMPTS = 2  # a request someone waits for (the API's symbol check): fail fast rather than retry a minute
QUICK_LOCK_S = 10.0


class Stopped(Exception):
    """The worker is stopping."""


@dataclass
class ClientStats:
    requests: int = 0
    weight_spent: int = 0
    weight_used_1m: int = 0
    retries: int = 0
    rate_limited: int = 0
    budget_waits: int = 0


class KlinesClient:
    def __init__(
        self, base_url: str, venue: Venue, weight_limit: int, stop: threading.Event,
        timeout_s: float = 10.0, backoff_max_s: float = 30.0,
    ) -> None:
        self.path, self.weight = KLINES_ENDPOINTS[venue]
        self.weight_limit = weight_limit
        self.stop = stop
        self.backoff_max_s = backoff_max_s
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s, headers={"user-agent": "quant-stream"})
        self.stats = ClientStats()
        self._minute = -1
        # the backfill thread and the API's on-demand kline check share one budget: one request at a time
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped

    def _over_budget(self, weight: int | None) -> bool:
        minute = int(time.time() // 60)
        if minute != self._minute:  # Binance's window is the calendar minute
            self._minute, self.stats.weight_used_1m = minute, 0
        return self.stats.weight_used_1m + (self.weight if weight is None else weight) > self.weight_limit

    def _respect_budget(self, weight: int | None = None) -> None:
        if self._over_budget(weight):
            self.stats.budget_waits += 1
            log.info("weight %d of budget %d used this minute; waiting for the next minute",
                     self.stats.weight_used_1m, self.weight_limit)
            self._wait(60 - time.time() % 60 + 0.5)
            self._minute, self.stats.weight_used_1m = int(time.time() // 60), 0

    def fetch(
        self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int = KLINES_PAGE_LIMIT
    ) -> list[Any]:
        """One page: klines with open time in [start_ms, end_ms], oldest first, as Binance's JSON arrays."""
        with self._lock:
            return self._fetch(symbol, interval, start_ms, end_ms, limit)

    def _fetch(self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int) -> list[Any]:
        params: dict[str, str | int] = {
            "symbol": symbol, "interval": interval, "startTime": start_ms, "endTime": end_ms, "limit": limit,
        }
        body = self._get(self.path, params, self.weight, f"{symbol} {interval} klines")
        if not isinstance(body, list):
            raise FetchError(f"klines answer is not a list: {str(body)[:200]}")
        return body

    def get_json(self, path: str, params: dict[str, str | int], weight: int) -> Any:
        """Another endpoint (the book's REST depth snapshots) within the same budget, retries and backoff."""
        with self._lock:
            return self._get(path, params, weight, f"{path} {params.get('symbol', '')}")

    def get_json_now(self, path: str, params: dict[str, str | int], weight: int) -> Any:
        """A request someone is waiting for (the API's symbol check): the same budget, but FetchError at once
        where `get_json` would wait (the budget spent this minute, a rate limit, the client busy for long),
        and at most QUICK_ATTEMPTS tries."""
        if not self._lock.acquire(timeout=QUICK_LOCK_S):
            raise FetchError("the REST client is busy (backfill); try again in a minute")
        try:
            return self._get(path, params, weight, f"{path} {params.get('symbol', '')}", quick=True)
        finally:
            self._lock.release()

    def _get(self, path: str, params: dict[str, str | int], weight: int, what: str, quick: bool = False) -> Any:
        attempt = 0
        while True:
            if quick and self._over_budget(weight):
                raise FetchError(f"the REST weight budget (REST_WEIGHT_LIMIT={self.weight_limit}) is spent this "
                                 "minute; try again in a minute")
            self._respect_budget(weight)
            attempt += 1
            try:
                resp = self.http.get(path, params=params)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                resp = None
            if resp is not None:
                self.stats.requests += 1
                self.stats.weight_spent += weight
                used = resp.headers.get(WEIGHT_HEADER)
                self.stats.weight_used_1m = int(used) if used and used.isdigit() else (
                    self.stats.weight_used_1m + weight)
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError as exc:
                        raise FetchError(f"{what}: answer is not JSON: {exc}") from exc
                if resp.status_code in RATE_LIMITED and quick:
                    self.stats.rate_limited += 1
                    raise FetchError(f"{what}: HTTP {resp.status_code}, the venue asks to wait "
                                     f"{_retry_after(resp, default=60.0):.0f} s")
                if resp.status_code in RATE_LIMITED:
                    self.stats.rate_limited += 1
                    wait = _retry_after(resp, default=60.0)
                    log.warning("HTTP %d from %s: waiting %.0f s as Retry-After asks", resp.status_code,
                                path, wait)
                    self._wait(wait)
                    attempt -= 1  # waiting as told is not a failed attempt
                    continue
                if 400 <= resp.status_code < 500:
                    raise RejectedRequest(f"HTTP {resp.status_code} for {what}: {resp.text[:200]}",
                                          resp.status_code, resp.text[:2000])
                problem = f"HTTP {resp.status_code}"
            if attempt >= (QUICK_ATTEMPTS if quick else MAX_ATTEMPTS):
                raise FetchError(f"{what}: {problem} after {attempt} attempts")
            self.stats.retries += 1
            self._wait(backoff_delay(attempt, RETRY_BASE_S, self.backoff_max_s))


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
