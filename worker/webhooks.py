"""Webhook delivery of fired alerts: `stream:alerts` -> HTTP POST of a JSON body, off the analytics loop.

Why a consumer group on `stream:alerts` rather than a hand-off from the engine: every alert (the analytics
consumer's pair and symbol rules, the book role's book rules) is in that stream exactly once, with an entry id
that is a natural idempotency key; the group remembers what was delivered across restarts (an entry is
acknowledged after a 2xx or when given up) and lets several workers share the deliveries. The analytics loop
only XADDs, as before, so a slow or dead receiver can never hold it.

A reader thread takes new entries while fewer than `max_in_hand` are in hand (the bounded queue: past it the
entries wait in `stream:alerts`, itself bounded by ALERTS_MAXLEN); sender threads POST them. An attempt fails
on a network error, a timeout or an answer other than 2xx; 408, 425, 429 and 5xx answers and network errors are
retried, up to `attempts` in all, after an exponential backoff with jitter; other answers are final. One POST
per alert and none after a 2xx; a retry carries the same `id` (also sent as the `Idempotency-Key` header), so a
receiver can tell a retry from a new crossing. A crash between the 2xx and the acknowledgement sends it once
more after the restart, with the same id. An alert older than `max_age_ms` (by its entry id's time) is dropped
rather than sent late: a stale signal misleads a desk or a bot.

Counters (delivered, failures = failed attempts, retries, dropped = alerts given up, in hand) go to the status
record `status:worker-webhooks` every second; the System page lists every status record.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from qs_analytics.alerts import AlertRule
from qs_common import keys
from qs_common.groups import ensure_group
from qs_common.settings import Settings
from qs_common.status import now_ms, write_status
from worker.alert_seed import seed_default_rule

log = logging.getLogger(__name__)

ATTEMPTS = 4  # in all: the first POST and three retries
TIMEOUT_S = 5.0  # per attempt (connect, read, write each)
BACKOFF_S = 0.5  # before the first retry; doubled for each next one
BACKOFF_MAX_S = 8.0
MAX_IN_HAND = 1_000
SENDERS = 4
PER_HOST = 2  # attempts in flight to one host at most: a receiver that hangs holds two senders, not every delivery
MAX_AGE_MS = 600_000
READ_COUNT = 100
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx
USER_AGENT = "quant-stream-alerts/1"


@dataclass(slots=True)
class Delivery:
    entry_id: str
    url: str
    body: bytes
    attempt: int = 0

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.lower()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def entry_time_ms(entry_id: str) -> int:
    """The ms part of a stream entry id (when Redis wrote it)."""
    return int(entry_id.split("-", 1)[0])


def _slack_escape(text: str) -> str:
    # Slack-style endpoints read `text` as mrkdwn, where <...> is a link or a mention: keep user text inert
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_request(entry_id: str, fields: dict[str, str]) -> tuple[str, bytes] | None:
    """(webhook URL, JSON body) for an alert entry whose rule names a webhook, None when it names none;
    ValueError when the entry is not an alert this module can read (docs/contracts.md: webhook body)."""
    rule = AlertRule.from_json(fields["rule"]) if "rule" in fields else None
    if rule is None or rule.webhook is None:
        return None
    kind = "symbol" if "symbol" in fields else "pair"
    subject = fields.get(kind, "")
    value, ts = float(fields["value"]), int(fields["ts"])
    body = {
        "id": entry_id, "rule_id": rule.id, "rule_name": rule.name, "expression": rule.expression,
        "kind": kind, kind: subject, "metric": rule.metric, "value": value, "op": rule.op,
        "abs_value": rule.abs_value, "threshold": rule.threshold, "ts": ts,
    }  # fmt: skip
    body["text"] = _slack_escape(f"Alert {rule.name or rule.id}: {subject} {rule.expression} ({rule.metric} = "
                                 f"{value:.6g})")
    return rule.webhook, json.dumps(body, allow_nan=False).encode()


def backoff_s(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The wait before retry number `attempt` (1, 2, ...): base·2^(attempt−1), capped, then "equal jitter"
    (half fixed, half random) so many alerts failing at once do not retry in step."""
    full = min(cap, base * 2 ** (attempt - 1))
    return full / 2 + rng.uniform(0.0, full / 2)


class WebhookDispatcher:
    def __init__(
        self, r: redis.Redis, consumer: str, stop: threading.Event | None = None, *, attempts: int = ATTEMPTS,
        timeout_s: float = TIMEOUT_S, backoff_s: float = BACKOFF_S, backoff_max_s: float = BACKOFF_MAX_S,
        max_in_hand: int = MAX_IN_HAND, senders: int = SENDERS, max_age_ms: int = MAX_AGE_MS,
        per_host: int = PER_HOST,
    ) -> None:
        self.r = r
        self.consumer = consumer
        self.stop = stop or threading.Event()
        self.attempts, self.backoff, self.backoff_max = attempts, backoff_s, backoff_max_s
        self.max_in_hand, self.senders, self.max_age_ms, self.per_host = max_in_hand, senders, max_age_ms, per_host
        self._busy: Counter[str] = Counter()  # host -> attempts in flight
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                   headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"})
        self._cv = threading.Condition()
        self._ready: deque[Delivery] = deque()
        self._later: list[tuple[float, int, Delivery]] = []  # (due, tie-break, delivery): retries waiting
        self._seq = itertools.count()
        self._rng = random.Random()
        self.in_hand = 0
        self.counts = {"delivered": 0, "failures": 0, "retries": 0, "dropped": 0, "without_webhook": 0,
                       "unreadable": 0, "redis_errors": 0}
        self.last_error = ""
        self.last_delivered_ms: int | None = None
        self.threads: list[threading.Thread] = []

    # ---- threads -----------------------------------------------------------------------------------------
    def start(self) -> WebhookDispatcher:
        self.threads = [threading.Thread(target=self.run_reader, name="webhooks-reader", daemon=True)]
        self.threads += [threading.Thread(target=self.run_sender, name=f"webhooks-{i}", daemon=True)
                         for i in range(self.senders)]
        for t in self.threads:
            t.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        with self._cv:
            self._cv.notify_all()
        for t in self.threads:
            t.join(timeout)
        self.client.close()

    def run_reader(self) -> None:
        """Read alerts (first this consumer's own unacknowledged ones: a restart), hand them to the senders."""
        after: str | None = "0"  # position in this consumer's pending list; None once it is read through
        status_at = 0.0
        while not self.stop.is_set():
            if time.monotonic() - status_at >= 1.0:
                status_at = time.monotonic()
                self._write_status()
            try:
                if after == "0":
                    ensure_group(self.r, keys.ALERTS_STREAM, keys.WEBHOOKS_GROUP)
                after = self._read_once(after)
            except (redis.RedisError, OSError) as exc:
                self._count("redis_errors", f"redis: {exc}")
                if "NOGROUP" in str(exc):
                    after = "0"  # the stream or group was deleted: create it again
                self.stop.wait(1.0)
        self._write_status()

    def _read_once(self, after: str | None) -> str | None:
        free = self.max_in_hand - self.in_hand
        if free <= 0:
            self.stop.wait(0.05)
            return after
        got: Any = self.r.xreadgroup(keys.WEBHOOKS_GROUP, self.consumer, {keys.ALERTS_STREAM: after or ">"},
                                     count=min(free, READ_COUNT), block=None if after else 500)
        entries: list[tuple[Any, Any]] = got[0][1] if got else []
        self._take([(_text(eid), {_text(k): _text(v) for k, v in (f or {}).items()}) for eid, f in entries])
        if after is None:
            return None
        return _text(entries[-1][0]) if entries else None

    def _take(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        done: list[str] = []
        for entry_id, fields in entries:
            if not fields:  # trimmed from the stream before it was delivered
                self._count("dropped", f"alert {entry_id} trimmed from {keys.ALERTS_STREAM} before delivery")
                done.append(entry_id)
                continue
            try:
                req = alert_request(entry_id, fields)
            except (KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                self._count("unreadable", f"alert {entry_id} unreadable: {str(exc)[:200]}")
                done.append(entry_id)
                continue
            if req is None:
                self._count("without_webhook")
                done.append(entry_id)
                continue
            with self._cv:
                self.in_hand += 1
                self._ready.append(Delivery(entry_id, *req))
                self._cv.notify()
        if done:
            self.r.xack(keys.ALERTS_STREAM, keys.WEBHOOKS_GROUP, *done)

    def run_sender(self) -> None:
        while True:
            d = self._next()
            if d is None:
                return
            try:
                self._attempt(d)
            except Exception as exc:  # a sender thread must outlive anything one alert does
                log.exception("webhook delivery of %s failed unexpectedly", d.entry_id)
                self._count("dropped", f"{exc!r}"[:200])
                self._done(d)
            finally:
                with self._cv:
                    self._busy[d.host] -= 1
                    self._cv.notify_all()

    def _next(self) -> Delivery | None:
        """The oldest ready delivery to a host with a free place (counted in flight), waiting for one."""
        with self._cv:
            while not self.stop.is_set():
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    self._ready.append(heapq.heappop(self._later)[2])
                for i, d in enumerate(self._ready):
                    if self._busy[d.host] < self.per_host:
                        del self._ready[i]
                        self._busy[d.host] += 1
                        return d
                self._cv.wait(min(0.5, self._later[0][0] - now) if self._later else 0.5)
        return None

    # ---- one attempt -------------------------------------------------------------------------------------
    def _attempt(self, d: Delivery) -> None:
        if now_ms() - entry_time_ms(d.entry_id) > self.max_age_ms:
            self._count("dropped", f"alert {d.entry_id} older than {self.max_age_ms} ms: not sent")
            self._done(d)
            return
        d.attempt += 1
        error, retryable = self._post(d)
        if error is None:
            with self._cv:
                self.counts["delivered"] += 1
                self.last_delivered_ms = now_ms()
            self._done(d)
            return
        self._count("failures", f"{urlsplit(d.url).hostname}: {error} (alert {d.entry_id}, attempt {d.attempt})")
        if retryable and d.attempt < self.attempts:
            delay = backoff_s(d.attempt, self.backoff, self.backoff_max, self._rng)
            with self._cv:
                self.counts["retries"] += 1
                heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), d))
                self._cv.notify()
            return
        self._count("dropped")
        log.warning("webhook alert %s given up after %d attempt(s): %s", d.entry_id, d.attempt, error)
        self._done(d)

    def _post(self, d: Delivery) -> tuple[str | None, bool]:
        """(None, _) on a 2xx, else (what went wrong, whether a retry may help)."""
        try:
            resp = self.client.post(d.url, content=d.body, headers={"Idempotency-Key": d.entry_id})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return f"{type(exc).__name__}: {exc}"[:200], True
        if 200 <= resp.status_code < 300:
            return None, False
        return f"HTTP {resp.status_code}", resp.status_code >= 500 or resp.status_code in RETRY_STATUSES

    def _done(self, d: Delivery) -> None:
        """Acknowledge the alert (delivered or given up) and free its place."""
        try:
            self.r.xack(keys.ALERTS_STREAM, keys.WEBHOOKS_GROUP, d.entry_id)
        except (redis.RedisError, OSError) as exc:  # left pending: the next start re-sends it, with the same id
            self._count("redis_errors", f"redis: {exc}")
        with self._cv:
            self.in_hand -= 1

    def _count(self, name: str, error: str | None = None) -> None:
        with self._cv:
            self.counts[name] += 1
            if error is not None:
                self.last_error = error[:300]

    # ---- status ------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._cv:
            return {"state": "stopping" if self.stop.is_set() else "running", "consumer": self.consumer,
                    "in_hand": self.in_hand, "retrying": len(self._later), **self.counts,
                    "last_error": self.last_error, "last_delivered_ms": self.last_delivered_ms}

    def _write_status(self) -> None:
        try:
            write_status(self.r, keys.STATUS_WORKER_WEBHOOKS, self.status())
        except (redis.RedisError, OSError) as exc:
            log.debug("status write failed: %s", exc)


def start(settings: Settings, r: redis.Redis) -> WebhookDispatcher:
    """The analytics role's alert services: the default rule (once per Redis), then webhook delivery."""
    try:
        if seed_default_rule(r):
            log.info("default alert rule added (|z| >= 2 on every pair)")
    except (redis.RedisError, OSError) as exc:  # the consumer reports Redis trouble itself; delivery retries
        log.warning("default alert rule not seeded: %s", exc)
    name = settings.consumer_name or socket.gethostname()
    return WebhookDispatcher(r, f"webhooks-{name}").start()
