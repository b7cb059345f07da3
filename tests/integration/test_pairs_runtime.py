"""Pairs at runtime end to end (issue 10): a real redis-server, a real worker (`--role analytics`), recorded ticks
XADDed as ingest writes them. A pair put into the registry while the worker runs appears in `stream:analytics`
within 5 s of its legs ticking; a changed window changes the entries' `window` and their numbers (checked against
numpy's OLS over the last `window` observations); a removed pair publishes no more."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from qs_common import control, keys
from qs_common.control import PairSettings
from tests.conftest import python_module, service_env
from tests.integration.procs import Proc, status, wait_for
from tests.pair_ticks import RawTick, observations, recorded_ticks

pytestmark = pytest.mark.integration

PID = "BTCUSDT/ETHUSDT"  # the seeded pair is ETHUSDT/BTCUSDT: this one is added at runtime


class Feeder:
    """XADDs recorded ticks in small chunks, as a live feed would, until stopped or out of ticks."""

    def __init__(self, r: redis.Redis, ticks: list[RawTick], chunk: int = 100, every_s: float = 0.05) -> None:
        self.r, self.ticks, self.chunk, self.every_s = r, ticks, chunk, every_s
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every_s) and self.sent < len(self.ticks):
            pipe = self.r.pipeline(transaction=False)
            for t in self.ticks[self.sent:self.sent + self.chunk]:
                pipe.xadd("stream:ticks", t.fields)  # type: ignore[arg-type]
            pipe.execute()
            self.sent = min(self.sent + self.chunk, len(self.ticks))

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def worker(tmp_path, redis_server) -> Iterator[Proc]:
    env = service_env(redis_server.url, tmp_path / "data", SYMBOLS="BTCUSDT,ETHUSDT", PAIRS="ETHUSDT/BTCUSDT",
                      ADF_EVERY_S="30")
    proc = Proc(python_module("worker", "--role", "analytics"), env, tmp_path / "worker.log")
    r = redis_server.client()
    wait_for(lambda: status(r, keys.worker_status("analytics")).get("state") == "running", 60, "analytics worker")
    yield proc
    assert proc.stop() == 0, proc.log()


def entries_of(r: redis.Redis, pair: str, after: str = "-") -> list[dict[str, str]]:
    out = []
    for eid, f in r.xrange(keys.ANALYTICS_STREAM, min=after):
        d = {k.decode(): v.decode() for k, v in f.items()}
        if d["pair"] == pair:
            out.append({**d, "id": eid.decode()})
    return out


def ols_beta(obs: list[tuple[int, float, float, int]], recv_ns: int, window: int) -> float:
    """numpy's least squares of y on x over the `window` observations ending at the tick `recv_ns`."""
    end = next(i for i, o in enumerate(obs) if o[3] == recv_ns) + 1
    xs = np.array([o[2] for o in obs[end - window:end]])
    ys = np.array([o[1] for o in obs[end - window:end]])
    a = np.column_stack([xs - xs.mean(), np.ones(window)])
    return float(np.linalg.lstsq(a, ys - ys.mean(), rcond=None)[0][0])


def test_pairs_added_changed_and_removed_while_the_worker_runs(redis_server, worker):
    r = redis_server.client()
    ticks = recorded_ticks(68_000)  # both recordings: ~34 s of feed
    obs = observations(ticks, "BTCUSDT", "ETHUSDT", mid=False)
    with Feeder(r, ticks) as feed:
        wait_for(lambda: entries_of(r, "ETHUSDT/BTCUSDT"), 30, "the seeded pair's entries")
        control.put_pair(r, PairSettings(y="BTCUSDT", x="ETHUSDT", window=100))
        first = wait_for(lambda: entries_of(r, PID), 5, "the added pair's entries within 5 s of its legs ticking")
        assert (first[0]["window"], first[0]["beta_source"], first[0]["price_source"]) == ("100", "ols", "trade")

        wait_for(lambda: len(entries_of(r, PID)) >= 5, 30, "more entries of the added pair")
        control.update_pair(r, PID, {"window": 40})
        # applied before the worker's next batch (within a second on an idle box; a batch in hand finishes first,
        # which on this shared test machine can take seconds: not a timing test)
        changed = wait_for(lambda: [e for e in entries_of(r, PID) if e["window"] == "40"], 30, "entries with window 40")
        wait_for(lambda: len([e for e in entries_of(r, PID) if e["window"] == "40"]) >= 5, 30, "more window-40 entries")

        control.remove_pair(r, PID)
        removed_at = control.version(r)
        # the worker's status record names the registry version its engines follow: from then on, no entry
        wait_for(lambda: status(r, keys.worker_status("analytics")).get("registry_version", 0) >= removed_at, 30,
                 "the worker to apply the removal")
        cut = r.xrange(keys.ANALYTICS_STREAM)[-1][0].decode()
        sent_at_cut = feed.sent
        wait_for(lambda: feed.sent > sent_at_cut + 2_000, 60, "more ticks")
        wait_for(lambda: entries_of(r, "ETHUSDT/BTCUSDT", after="(" + cut), 30, "the other pair going on")
    assert entries_of(r, PID, after="(" + cut) == []

    checked = 0
    for e in entries_of(r, PID):  # every entry's β is numpy's over its own window, before and after the change
        if "ols_beta" in e:  # absent until a full window
            w = int(e["window"])
            assert float(e["ols_beta"]) == pytest.approx(ols_beta(obs, int(e["recv_ns"]), w), rel=1e-9), e["id"]
            checked += 1
    assert checked >= 10
    e = changed[0]  # the warmed state: its numbers are those of the new window, not the old one
    assert abs(float(e["ols_beta"]) - ols_beta(obs, int(e["recv_ns"]), 100)) > 1e-6 * abs(float(e["ols_beta"]))
