"""The analytics consumer driven by the live registry (issue 10), against a reference: a fresh PairEngine fed the
same recorded ticks, aligned by a plain loop (tests/pair_ticks.py). A real redis-server holds the registry and the
tick stream; the handler is called with the stream's entries as the consumer group would deliver them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import redis

from qs_common import control, keys
from qs_common.control import PairSettings
from qs_common.settings import Settings
from tests.integration.procs import wait_for
from tests.pair_ticks import RawTick, observations, recorded_ticks, reference_engine
from worker import live_pairs, warmup
from worker.analytics_consumer import AnalyticsHandler
from worker.pair_slots import Plan, pair_config, plan

PID = "ETHUSDT/BTCUSDT"
STREAM = "stream:ticks"  # Settings().ticks_stream
NOT_METRICS = {"v", "pair", "ts", "recv_ns", "y", "x", "adf_verdict", "window", "window_ms", "beta_source",
               "price_source", "z_entry", "z_exit", "shard"}


@pytest.fixture(scope="module")
def ticks() -> list[RawTick]:
    return recorded_ticks(6_000)


@pytest.fixture
def settings(redis_server) -> Settings:
    return Settings(redis_url=redis_server.url, symbols=("BTCUSDT", "ETHUSDT"), pairs=(), analytics_max_rate=10.0)


@pytest.fixture
def handler(settings: Settings, r: redis.Redis) -> Iterator[AnalyticsHandler]:
    r.set(control.SEEDED_KEY, "1")  # each test writes its own registry
    h = AnalyticsHandler(settings, r)
    yield h
    h.close()
    h.webhooks.close(timeout=2)


def xadd(r: redis.Redis, ticks: list[RawTick]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Append the ticks to the tick stream; their entries as XREADGROUP returns them."""
    pipe = r.pipeline(transaction=False)
    for t in ticks:
        pipe.xadd(STREAM, t.fields)  # type: ignore[arg-type]
    ids = pipe.execute()
    by_id = dict(r.xrange(STREAM, min=ids[0], max=ids[-1]))
    return [(i, by_id[i]) for i in ids]


def feed(h: AnalyticsHandler, entries: list, batch: int = 500) -> None:
    for i in range(0, len(entries), batch):
        assert h(entries[i:i + batch]) == []


def published(r: redis.Redis, pair: str = PID, after: str = "-") -> list[dict[str, str]]:
    out = []
    for _, f in r.xrange(keys.ANALYTICS_STREAM, min=after):
        d = {k.decode(): v.decode() for k, v in f.items()}
        if d["pair"] == pair:
            out.append(d)
    return out


def assert_matches(entry: dict[str, str], ref: dict[str, float]) -> None:
    """Every metric of the entry equals the reference's (1e-9 relative), and no metric is missing or extra."""
    want = {k: v for k, v in ref.items() if math.isfinite(v)}
    got = {k: float(v) for k, v in entry.items() if k not in NOT_METRICS}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def check_against(entries: list[dict[str, str]], obs: list, refs: list[dict[str, float]]) -> None:
    at = {o[3]: i for i, o in enumerate(obs)}  # the observation an entry was made at, by its tick's recv_ns
    assert entries
    for e in entries:
        assert_matches(e, refs[at[int(e["recv_ns"])]])


@pytest.fixture
def fast_poll(monkeypatch):
    monkeypatch.setattr(live_pairs, "POLL_S", 0.0)  # the registry is read before every batch


def test_plan_tells_rebuilds_from_relabels():
    a = PairSettings(y="ETHUSDT", x="BTCUSDT", window=100)
    b = PairSettings(y="SOLUSDT", x="BTCUSDT")
    current = {a.id: a, b.id: b}
    c = PairSettings(y="BNBUSDT", x="BTCUSDT")
    assert plan(current, {a.id: a.model_copy(update={"window": 50}), c.id: c}) == Plan(
        added=(c.id,), removed=(b.id,), rebuilt=(a.id,))
    for change in ({"beta_source": "kalman"}, {"delta": 1e-6}, {"obs_noise": 2.0}, {"price_source": "mid"},
                   {"window_ms": 60_000}):
        assert plan(current, {**current, a.id: a.model_copy(update=change)}).rebuilt == (a.id,)
    assert plan(current, {**current, a.id: a.model_copy(update={"z_entry": 3.0})}) == Plan(relabelled=(a.id,))
    assert plan(current, current) == Plan()


def test_a_pairs_engine_takes_its_own_settings(settings):
    ps = PairSettings(y="ETHUSDT", x="BTCUSDT", window=77, window_ms=90_000, beta_source="theilsen", delta=1e-5,
                      obs_noise=0.5)
    cfg = pair_config(settings, ps)
    assert (cfg.window, cfg.window_ms, cfg.beta_source, cfg.delta, cfg.obs_noise, cfg.theilsen) == (
        77, 90_000, "theilsen", 1e-5, 0.5, True)
    assert (cfg.init_cov, cfg.huber_every_n, cfg.adf_every_ms) == (
        settings.kalman_init_cov, settings.huber_every_n, int(settings.adf_every_s * 1000))
    assert pair_config(settings, ps.model_copy(update={"beta_source": "ols"})).theilsen == settings.theilsen


def test_a_changed_window_rebuilds_the_engine_warm_and_equal_to_the_reference(r, handler, settings, ticks, fast_poll):
    entries = xadd(r, ticks)
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=60))
    feed(handler, entries[:3_000])
    before = published(r)
    cut = r.xrange(keys.ANALYTICS_STREAM)[-1][0].decode()
    # window and β source change: the new engine (Kalman: its β depends on the whole path) is warmed with every
    # tick before the next batch, which then continues it live
    control.update_pair(r, PID, {"window": 150, "beta_source": "kalman"})
    feed(handler, entries[3_000:])

    obs = observations(ticks, "ETHUSDT", "BTCUSDT", mid=False)
    n_warm = len(observations(ticks[:3_000], "ETHUSDT", "BTCUSDT", mid=False))
    old_cfg = pair_config(settings, PairSettings(y="ETHUSDT", x="BTCUSDT", window=60))
    _, old_refs = reference_engine(old_cfg, obs[:n_warm])
    check_against(before, obs, old_refs)
    assert {e["window"] for e in before} == {"60"} and {e["beta_source"] for e in before} == {"ols"}

    new = PairSettings(y="ETHUSDT", x="BTCUSDT", window=150, beta_source="kalman")
    ref_engine, refs = reference_engine(pair_config(settings, new), obs, warmed=n_warm)
    after = published(r, after="(" + cut)
    assert {(e["window"], e["beta_source"], e["price_source"]) for e in after} == {("150", "kalman", "trade")}
    # the first entry after the change is the warmed state, published before any new tick was fed
    assert int(after[0]["recv_ns"]) == obs[n_warm - 1][3]
    check_against(after, obs, refs)
    assert after[0]["zscore"] != before[-1]["zscore"]

    engine = handler.live.slots[PID].engine
    assert engine.n == ref_engine.n == len(obs)
    nxt = (obs[-1][0] + 1, obs[-1][1] * 1.001, obs[-1][2])  # one more observation: the hidden state agrees too
    assert_matches({k: repr(v) for k, v in engine.update(*nxt).items()}, ref_engine.update(*nxt))


def test_an_added_pair_appears_at_once_without_ticks_of_its_legs(r, handler, settings, ticks, fast_poll):
    entries = xadd(r, ticks[:4_000])
    feed(handler, entries)  # no pair yet: only symbol statistics
    assert published(r) == []
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=300, price_source="mid", z_entry=2.5))
    last = ticks[3_999]
    sol = RawTick("trade", "SOLUSDT", last.ts, 150.0, last.recv_ns + 1, {
        "v": "1", "kind": "trade", "sym": "SOLUSDT", "ts": last.ts, "ev": last.ts, "recv": last.recv_ns + 1, "id": 1,
        "p": "150.0", "q": "1", "m": 0})
    handler(xadd(r, [sol]))

    obs = observations(ticks[:4_000], "ETHUSDT", "BTCUSDT", mid=True)
    new = PairSettings(y="ETHUSDT", x="BTCUSDT", window=300, price_source="mid", z_entry=2.5)
    ref_engine, refs = reference_engine(pair_config(settings, new), obs, warmed=len(obs))
    [entry] = published(r)
    assert (entry["price_source"], entry["window"], entry["z_entry"], entry["z_exit"]) == ("mid", "300", "2.5", "0.5")
    assert int(entry["ts"]) == obs[-1][0] and int(entry["recv_ns"]) == obs[-1][3]
    assert_matches(entry, refs[-1])
    assert "zscore" in entry and handler.live.slots[PID].engine.n == ref_engine.n == len(obs)


def test_the_warm_up_reads_a_bounded_history(r, handler, settings, ticks, fast_poll, monkeypatch):
    monkeypatch.setattr(warmup, "MAX_ENTRIES", 1_000)
    monkeypatch.setattr(warmup, "PAGE", 400)
    entries = xadd(r, ticks[:3_000])
    feed(handler, entries[:2_000])
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=2_000))  # wants 4,000 leg ticks
    feed(handler, entries[2_000:])
    history = ticks[1_000:2_000]  # the 1,000 entries before the batch that followed the change
    n_warm = len(observations(history, "ETHUSDT", "BTCUSDT", mid=False))
    obs = observations(ticks[1_000:3_000], "ETHUSDT", "BTCUSDT", mid=False)
    ref_engine, refs = reference_engine(pair_config(settings, handler.live.slots[PID].settings), obs, warmed=n_warm)
    check_against(published(r), obs, refs)
    assert handler.live.slots[PID].engine.n == ref_engine.n


def test_while_idle_a_change_applies_and_no_tick_counts_twice(r, handler, settings, ticks):
    entries = xadd(r, ticks[:3_000])
    r.xgroup_create(STREAM, keys.ANALYTICS_GROUP, id="$")  # the group has nothing to deliver: the stream is idle
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=50))
    # no batch comes: the handler's own thread applies the change and warms the engine up to the newest tick
    wait_for(lambda: published(r), 10, "the warmed entry while the stream is idle")
    obs = observations(ticks[:3_000], "ETHUSDT", "BTCUSDT", mid=False)
    assert int(published(r)[0]["recv_ns"]) == obs[-1][3]
    # the group then delivers those same entries (they were never read by it), and newer ones
    feed(handler, entries)
    assert len(published(r)) == 1 and handler.live.slots[PID].engine.n == len(obs)
    feed(handler, xadd(r, ticks[3_000:4_000]))
    obs = observations(ticks[:4_000], "ETHUSDT", "BTCUSDT", mid=False)
    n_warm = len(observations(ticks[:3_000], "ETHUSDT", "BTCUSDT", mid=False))
    ref_engine, refs = reference_engine(pair_config(settings, handler.live.slots[PID].settings), obs, warmed=n_warm)
    check_against(published(r), obs, refs)
    assert handler.live.slots[PID].engine.n == ref_engine.n == len(obs)


def test_removed_pairs_and_symbols_stop_and_z_bands_only_relabel(r, handler, settings, ticks, fast_poll):
    entries = xadd(r, ticks[:4_000])
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=50))
    feed(handler, entries[:1_000])
    engine = handler.live.slots[PID].engine
    control.update_pair(r, PID, {"z_entry": 3.0, "z_exit": 1.0})
    feed(handler, entries[1_000:2_000])
    assert handler.live.slots[PID].engine is engine  # the bands drive alerts, not the engine
    last = published(r)[-1]
    assert (last["z_entry"], last["z_exit"], last["window"]) == ("3.0", "1.0", "50")

    control.add_symbol(r, "SOLUSDT")
    sol = [{"v": "1", "kind": "trade", "sym": "SOLUSDT", "ts": ticks[2_000].ts + k, "ev": ticks[2_000].ts + k,
            "recv": ticks[2_000].recv_ns + k, "id": k + 1, "p": f"{150 + k}.5", "q": "2", "m": 0} for k in range(3)]
    pipe = r.pipeline(transaction=False)
    for f in sol:
        pipe.xadd(STREAM, f)  # type: ignore[arg-type]
    ids = pipe.execute()
    handler(list(r.xrange(STREAM, min=ids[0], max=ids[-1])))
    stats = r.get(keys.symbol_stats_key("SOLUSDT"))
    assert stats is not None and '"price": 152.5' in stats.decode() and '"n": 3' in stats.decode()

    control.remove_pair(r, PID)
    control.remove_symbol(r, "SOLUSDT")
    cut = r.xrange(keys.ANALYTICS_STREAM)[-1][0].decode()
    feed(handler, entries[2_000:])
    assert published(r, after="(" + cut) == [] and PID not in handler.live.slots
    assert r.get(keys.symbol_stats_key("SOLUSDT")) is None and "SOLUSDT" not in handler.symbol_stats
    assert r.get(keys.symbol_stats_key("ETHUSDT")) is not None  # the legs stay active


def test_a_registry_read_that_fails_is_applied_whole_later(r, handler, settings, ticks, fast_poll, monkeypatch):
    entries = xadd(r, ticks[:2_000])
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=50))
    real = warmup.read_history
    calls = []

    def failing(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("gone")
        return real(*a, **kw)

    monkeypatch.setattr(warmup, "read_history", failing)
    with pytest.raises(redis.ConnectionError):
        handler(entries[:500])  # the consumer retries a batch that failed on Redis
    assert handler.live.slots == {}
    feed(handler, entries)
    obs = observations(ticks[:2_000], "ETHUSDT", "BTCUSDT", mid=False)
    assert handler.live.slots[PID].engine.n == len(obs)  # the retried batch saw the change whole


def test_with_a_backlog_the_first_batch_warms_not_the_idle_thread(r, handler, settings, ticks):
    entries = xadd(r, ticks[:3_000])
    r.xgroup_create(STREAM, keys.ANALYTICS_GROUP, id="0")  # a restart with 3,000 entries still to deliver
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=50))
    time.sleep(2.5)  # the idle thread must not warm up to the newest entry: the backlog would be skipped
    assert published(r) == [] and handler.live.slots == {}
    feed(handler, entries)  # the backlog, live: the first batch applies the registry (nothing before it)
    obs = observations(ticks[:3_000], "ETHUSDT", "BTCUSDT", mid=False)
    ref_engine, refs = reference_engine(pair_config(settings, handler.live.slots[PID].settings), obs)
    check_against(published(r), obs, refs)
    assert len(published(r)) > 10 and handler.live.slots[PID].engine.n == ref_engine.n == len(obs)


def test_the_records_written_equal_dataclasses_asdict_field_for_field():
    # the consumer builds symbol and book records without dataclasses.asdict (its deep copy cost 14 µs a record)
    from dataclasses import asdict

    from qs_analytics.symbol import SymbolStats, book_metrics
    from worker.analytics_consumer import _as_dict

    stats = SymbolStats(50)
    for i in range(60):
        stats.push(1_000 * i, 100.0 + (i % 7) * 0.25, 0.5 + i % 3)
    for record in (stats.snapshot(), book_metrics("100.10", "1.5", "100.20", "0"), book_metrics("1", "0", "1", "0")):
        got, want = _as_dict(record), asdict(record)
        assert list(got) == list(want)
        assert all(got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])) for k in want)


def test_flat_fields_give_the_same_entries_as_dicts(r, handler, settings, ticks):
    # the consumer hands the handler raw replies' flat [name, value, ...] lists (flat_fields=True, issue 12)
    entries = xadd(r, ticks[:3_000])
    r.xgroup_create(STREAM, keys.ANALYTICS_GROUP, id="0")  # a backlog: the idle thread leaves the warm-up to feed
    control.put_pair(r, PairSettings(y="ETHUSDT", x="BTCUSDT", window=50))
    feed(handler, [(eid, [x for pair in f.items() for x in pair]) for eid, f in entries], batch=10)
    from_flat = published(r)
    obs = observations(ticks[:3_000], "ETHUSDT", "BTCUSDT", mid=False)
    check_against(from_flat, obs, reference_engine(pair_config(settings, handler.live.slots[PID].settings), obs)[1])
    assert len(from_flat) > 10
    r.delete(keys.ANALYTICS_STREAM)
    as_dicts = AnalyticsHandler(settings, r)
    try:
        feed(as_dicts, entries, batch=10)
    finally:
        as_dicts.close()
        as_dicts.webhooks.close(timeout=2)
    assert published(r) == from_flat
