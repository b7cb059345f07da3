"""Alert webhooks end to end: a real redis-server, a real worker (analytics role) fed ticks, a real HTTP receiver.

The crossings are counted independently of the worker's evaluator: from the z-score series it published on
stream:analytics (every observation is published: ANALYTICS_MAX_RATE is far above the tick rate), with a plain
loop of the rule's hysteresis.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.rewind import parse_id
from qs_analytics.alerts import AlertRule
from qs_common import keys
from tests.conftest import free_port, python_module, service_env
from tests.integration.procs import Proc, drained, status, wait_for
from worker.analytics_consumer import RULES_REFRESH_S

pytestmark = pytest.mark.integration

PAIR = "ETHUSDT/BTCUSDT"
TICKS = 3_000  # trades, alternating BTCUSDT and ETHUSDT


class Receiver:
    """A local webhook receiver: /ok answers 200, /flaky 500 twice then 200, /hang never answers (until closed)."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []  # path, headers, body of every request, in order
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.up = threading.Event()  # /later hangs until it is set, then answers 200
        self.answered: list[str] = []  # alert ids /later answered with 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.got.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                    flaky_seen = sum(1 for g in outer.got if g["path"] == "/flaky")
                if self.path == "/hang" or (self.path == "/later" and not outer.up.is_set()):
                    outer.release.wait(60)
                    return
                if self.path == "/later":
                    with outer.lock:
                        outer.answered.append(json.loads(body)["id"])
                code = 500 if self.path == "/flaky" and flaky_seen <= 2 else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [g for g in self.got if g["path"] == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


def start_analytics(redis_url: str, tmp_path: Path) -> Proc:
    env = service_env(redis_url, tmp_path / "data", SYMBOLS="BTCUSDT,ETHUSDT", PAIRS=PAIR, OLS_WINDOW="40",
                      ANALYTICS_MAX_RATE="100000", ADF_EVERY_S="3600")
    return Proc(python_module("worker", "--role", "analytics"), env, tmp_path / "worker.log")


def feed_ticks(r: redis.Redis, n: int = TICKS, seed: int = 7) -> None:
    """Two legs 5 ms apart; ETH = 0.05·BTC·e^s with s a fast mean-reverting AR(1): z crosses ±2 many times."""
    rng = random.Random(seed)
    btc, s = 60_000.0, 0.0
    t0 = 1_723_161_600_000
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        ts = t0 + 5 * i
        if i % 2 == 0:
            btc *= math.exp(rng.gauss(0, 2e-4))
            sym, price = "BTCUSDT", btc
        else:
            s = 0.6 * s + rng.gauss(0, 1e-3)
            sym, price = "ETHUSDT", 0.05 * btc * math.exp(s)
        pipe.xadd("stream:ticks", {"v": "1", "sym": sym, "kind": "trade", "ts": ts, "ev": ts, "recv": ts * 1_000_000,
                                   "id": i + 1, "p": f"{price:.6f}", "q": "0.01", "m": "0"})  # fmt: skip
    pipe.execute()


def crossings(zs: list[float], entry: float, exit_: float) -> list[int]:
    """Indices where |z| >= entry while armed; re-armed once |z| < exit_ (the rule's hysteresis, plainly)."""
    out, armed = [], True
    for i, z in enumerate(zs):
        if armed and abs(z) >= entry:
            out.append(i)
            armed = False
        elif not armed and abs(z) < exit_:
            armed = True
    return out


def analytics_z(r: redis.Redis) -> list[tuple[int, float]]:
    return [(int(f[b"ts"]), float(f[b"zscore"])) for _, f in r.xrange("stream:analytics")
            if f[b"pair"].decode() == PAIR and b"zscore" in f]  # fmt: skip


def alerts_of(r: redis.Redis, rule_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(eid.decode(), {k.decode(): v.decode() for k, v in f.items()}) for eid, f in r.xrange("stream:alerts")
            if f[b"rule_id"].decode() == rule_id]  # fmt: skip


def ready(r: redis.Redis, proc: Proc) -> None:
    def up() -> bool:
        if proc.p.poll() is not None:
            raise AssertionError(f"worker exited {proc.p.returncode}:\n{proc.log()}")
        return bool(status(r, "worker-analytics")) and bool(status(r, keys.STATUS_WORKER_WEBHOOKS))

    wait_for(up, 60, "the analytics worker and its webhook delivery")


def test_webhooks_exactly_once_per_crossing_and_retried_with_the_same_id(tmp_path, redis_server, receiver):
    r = redis_server.client()
    worker = start_analytics(redis_server.url, tmp_path)
    try:
        ready(r, worker)
        # a fresh Redis gets the default rule (no webhook: its alerts are written, not posted)
        default = AlertRule.from_json(r.hget(keys.ALERT_RULES, "default-z"))
        assert (default.metric, default.op, default.threshold, default.abs_value, default.pair) == (
            "zscore", ">=", 2.0, True, "*")
        hook = AlertRule.from_expression("hook", "|z| >= 2", hysteresis=1.5, webhook=f"{receiver.url}/ok")
        flaky = AlertRule.from_expression("flaky", "n >= 20", webhook=f"{receiver.url}/flaky")  # fires once
        r.hset(keys.ALERT_RULES, mapping={"hook": hook.to_json(), "flaky": flaky.to_json()})
        # the consumer rereads the rules at most every RULES_REFRESH_S, on a batch: its last read was before the
        # write, so the first batch once this has passed reads them (whatever else reads them in between)
        time.sleep(RULES_REFRESH_S + 0.2)
        started = time.monotonic()
        feed_ticks(r)
        wait_for(lambda: drained(r, groups=("analytics",)), 120, "the analytics consumer to drain")
        print(f"{TICKS} ticks analysed in {time.monotonic() - started:.1f} s with receivers that answer")
        fired = alerts_of(r, "hook")
        wait_for(lambda: len(receiver.requests("/ok")) >= len(fired) and len(receiver.requests("/flaky")) >= 3, 30,
                 "the webhook deliveries")
        time.sleep(1.5)  # nothing more may come: no re-send after a 2xx
        st = wait_for(lambda: (s := status(r, keys.STATUS_WORKER_WEBHOOKS)) and s["in_hand"] == 0 and s, 10,
                      "the delivery status")
    finally:
        assert worker.stop() == 0, worker.log()

    # the crossings, counted plainly on the published z series, are the alerts and the POSTs, one each
    series = analytics_z(r)
    zs = [z for _, z in series]
    expected = [series[i] for i in crossings(zs, 2.0, 0.5)]
    print(f"{len(series)} observations, {len(expected)} crossings of |z| >= 2 (re-armed below 0.5)")
    assert len(expected) >= 5, "the test data should cross several times"
    assert [(int(f["ts"]), float(f["value"])) for _, f in fired] == expected
    # parallel senders: any order; sorted as stream ids ("…-10" after "…-2": many alerts share a millisecond)
    posts = sorted(receiver.requests("/ok"), key=lambda p: parse_id(p["body"]["id"]))
    assert [p["body"]["id"] for p in posts] == [eid for eid, _ in fired]  # once each
    for p, (eid, f) in zip(posts, fired, strict=True):
        b = p["body"]
        assert p["headers"]["Idempotency-Key"] == eid
        assert (b["rule_id"], b["pair"], b["kind"], b["metric"], b["threshold"], b["op"]) == (
            "hook", PAIR, "pair", "zscore", 2.0, ">=")
        assert b["value"] == float(f["value"]) and b["ts"] == int(f["ts"]) and b["expression"] == "|zscore| >= 2"
        assert abs(b["value"]) >= 2.0
    assert len(alerts_of(r, "default-z")) == len(expected)  # the default rule is the same rule, without a webhook

    # a receiver failing twice then answering 200: the same alert id three times, two failures counted
    flaky_posts = receiver.requests("/flaky")
    (flaky_id, _), = alerts_of(r, "flaky")
    assert [p["body"]["id"] for p in flaky_posts] == [flaky_id] * 3
    assert flaky_posts[0]["body"]["value"] == 20.0 and flaky_posts[0]["body"]["metric"] == "n"
    assert (st["failures"], st["retries"], st["dropped"]) == (2, 2, 0), st
    assert st["delivered"] == len(expected) + 1 and st["without_webhook"] == len(expected), st
    group = {g["name"].decode(): g for g in r.xinfo_groups("stream:alerts")}["webhooks"]
    assert group["pending"] == 0 and group["lag"] == 0  # every alert acknowledged


def test_a_dead_or_hanging_receiver_does_not_hold_the_analytics(tmp_path, redis_server, receiver):
    r = redis_server.client()
    healthy = Receiver()  # another host (port): its deliveries must not wait behind the hanging one
    dead = f"http://127.0.0.1:{free_port()}/dead"  # nothing listens there
    rules = {f"hang{i}": AlertRule.from_expression(f"hang{i}", "|z| >= 2", hysteresis=1.5,
                                                   webhook=f"{receiver.url}/hang") for i in range(8)}
    rules |= {f"dead{i}": AlertRule.from_expression(f"dead{i}", "|z| >= 2", hysteresis=1.5, webhook=dead)
              for i in range(8)}
    rules["fine"] = AlertRule.from_expression("fine", "|z| >= 2", hysteresis=1.5, webhook=f"{healthy.url}/ok")
    r.hset(keys.ALERT_RULES, mapping={k: v.to_json() for k, v in rules.items()})
    worker = start_analytics(redis_server.url, tmp_path)
    try:
        ready(r, worker)
        assert r.hget(keys.ALERT_RULES, "default-z") is None  # an install with rules gets no default
        # no wait for the rules: they were written before the worker started, so any read of them has them
        started = time.monotonic()
        feed_ticks(r)
        wait_for(lambda: drained(r, groups=("analytics",)), 120, "the analytics consumer to drain")
        took = time.monotonic() - started
        alerts = r.xlen("stream:alerts")
        st = wait_for(lambda: (s := status(r, keys.STATUS_WORKER_WEBHOOKS)) and s["failures"] > 0 and s, 30,
                      "failed deliveries counted")
        print(f"{TICKS} ticks analysed in {took:.1f} s with {alerts} alerts for receivers that hang or refuse; "
              f"delivery status then: {st}")
        # every tick became an observation on stream:analytics while the deliveries were still being tried (the
        # status hash is written on the worker's status beat, which may come a moment after the last ack)
        assert len(analytics_z(r)) > 0
        wait_for(lambda: status(r, "worker-analytics")["observations"] == TICKS - 1, 10, "the observations counted")
        assert r.xlen("stream:analytics") == TICKS - 1
        assert alerts >= 17 * 5 and st["failures"] > 0
        assert st["in_hand"] > 0 or st["dropped"] > 0
        assert receiver.requests("/hang")  # it was tried
        # the healthy receiver gets every one of its alerts while the hanging one still holds its share of senders
        fine = {eid for eid, _ in alerts_of(r, "fine")}
        got = lambda: {p["body"]["id"] for p in healthy.requests("/ok")}  # noqa: E731
        wait_for(lambda: got() == fine, 60, "the healthy receiver's alerts")
        assert len(healthy.requests("/ok")) == len(fine) and status(r, keys.STATUS_WORKER_WEBHOOKS)["in_hand"] > 0
    finally:
        healthy.close()
        assert worker.stop() == 0, worker.log()


def test_alerts_in_flight_when_the_worker_dies_are_sent_after_the_restart_with_the_same_ids(
    tmp_path, redis_server, receiver
):
    r = redis_server.client()
    rule = AlertRule.from_expression("later", "|z| >= 2", hysteresis=1.5, webhook=f"{receiver.url}/later")
    r.hset(keys.ALERT_RULES, rule.id, rule.to_json())
    worker = start_analytics(redis_server.url, tmp_path)
    ready(r, worker)  # the rule was written before the worker started: its first read has it
    feed_ticks(r)
    wait_for(lambda: drained(r, groups=("analytics",)), 120, "the analytics consumer to drain")
    fired = {eid for eid, _ in alerts_of(r, "later")}
    wait_for(lambda: receiver.requests("/later"), 30, "a first attempt")
    worker.kill()  # mid-delivery: the receiver has not answered any of them
    assert receiver.answered == [] and len(fired) >= 5
    pending = {g["name"].decode(): g for g in r.xinfo_groups("stream:alerts")}["webhooks"]["pending"]
    print(f"{len(fired)} alerts, {pending} unacknowledged when the worker was killed")
    assert pending > 0
    receiver.up.set()
    worker = start_analytics(redis_server.url, tmp_path)
    try:
        ready(r, worker)
        wait_for(lambda: set(receiver.answered) == fired, 60, "every alert delivered after the restart")
        time.sleep(1.5)
        assert sorted(receiver.answered) == sorted(fired)  # once each, no new alert, none lost
        assert {eid for eid, _ in alerts_of(r, "later")} == fired
    finally:
        assert worker.stop() == 0, worker.log()
