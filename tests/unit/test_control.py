"""The live control registry (qs_common/control.py) against a real redis-server."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from qs_common import control
from qs_common.settings import load_settings


def settings(**env: object):  # type: ignore[no-untyped-def]
    return load_settings(**{"symbols": "btcusdt,ethusdt,solusdt", "pairs": "ETHUSDT/BTCUSDT", **env})


def test_seed_once_from_settings(r: redis.Redis) -> None:
    s = settings(ols_window=120, beta_source="kalman")
    assert control.seed(r, s) is True
    assert control.active_symbols(r) == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    pairs = control.active_pairs(r)
    assert list(pairs) == ["ETHUSDT/BTCUSDT"]
    ps = pairs["ETHUSDT/BTCUSDT"]
    assert (ps.window, ps.beta_source, ps.y, ps.x) == (120, "kalman", "ETHUSDT", "BTCUSDT")
    assert control.version(r) == 1
    # A user's change survives the next process's start: SYMBOLS only seeds an empty registry once.
    control.remove_pair(r, "ETHUSDT/BTCUSDT")
    control.remove_symbol(r, "SOLUSDT")
    assert control.seed(r, settings(symbols="xrpusdt", pairs="")) is False
    assert control.active_symbols(r) == ("BTCUSDT", "ETHUSDT")
    assert control.active_pairs(r) == {}


def test_seed_races_have_one_winner(r: redis.Redis, redis_server) -> None:  # type: ignore[no-untyped-def]
    s = settings()
    results: list[bool] = []
    clients = [redis_server.client() for _ in range(8)]
    barrier = threading.Barrier(len(clients))

    def go(c: redis.Redis) -> None:
        barrier.wait()
        results.append(control.seed(c, s))

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert control.version(r) == 1


def test_add_and_remove_symbols(r: redis.Redis) -> None:
    assert control.add_symbol(r, " solusdt ") is True
    assert control.add_symbol(r, "SOLUSDT") is False
    assert control.active_symbols(r) == ("SOLUSDT",)
    assert control.remove_symbol(r, "solusdt") is True
    assert control.remove_symbol(r, "SOLUSDT") is False
    assert control.active_symbols(r) == ()
    assert control.version(r) == 4  # every write moves the version, so every watcher rereads


@pytest.mark.parametrize("bad", ["", "sol-usdt", "S", "x" * 31, "BTC/USDT", "ПРИВЕТ", 5, None])
def test_bad_symbols_are_refused(r: redis.Redis, bad: object) -> None:
    with pytest.raises(control.ControlError, match="symbol"):
        control.add_symbol(r, bad)  # type: ignore[arg-type]
    assert r.exists(control.SYMBOLS_KEY) == 0


def test_pair_adds_its_legs_and_a_leg_in_use_cannot_go(r: redis.Redis) -> None:
    ps = control.pair_from_body({"y": "solusdt", "x": "BTCUSDT", "window": 50, "beta_source": "huber"})
    assert control.put_pair(r, ps) is True
    assert control.active_symbols(r) == ("BTCUSDT", "SOLUSDT")
    with pytest.raises(control.InUse, match="SOLUSDT/BTCUSDT"):
        control.remove_symbol(r, "BTCUSDT")
    assert control.active_symbols(r) == ("BTCUSDT", "SOLUSDT")
    assert control.put_pair(r, ps.model_copy(update={"window": 60})) is False  # replaced, not added
    assert control.active_pairs(r)["SOLUSDT/BTCUSDT"].window == 60
    assert control.remove_pair(r, "SOLUSDT-BTCUSDT") is True
    assert control.remove_pair(r, "SOLUSDT/BTCUSDT") is False
    assert control.active_symbols(r) == ("BTCUSDT", "SOLUSDT")  # legs stay until removed on their own
    assert control.remove_symbol(r, "BTCUSDT") is True


def test_update_pair_changes_only_what_is_given(r: redis.Redis) -> None:
    control.put_pair(r, control.pair_from_body({"y": "ETHUSDT", "x": "BTCUSDT", "window": 300}))
    after = control.update_pair(r, "ETHUSDT-BTCUSDT", {"window": 90, "price_source": "mid"})
    assert (after.window, after.price_source, after.beta_source) == (90, "mid", "ols")
    assert control.get_pair(r, "ETHUSDT/BTCUSDT") == after
    with pytest.raises(control.ControlError, match="cannot change"):
        control.update_pair(r, "ETHUSDT-BTCUSDT", {"x": "SOLUSDT"})
    with pytest.raises(control.ControlError, match="z_exit"):
        control.update_pair(r, "ETHUSDT-BTCUSDT", {"z_exit": 3.0})
    with pytest.raises(control.UnknownPair):
        control.update_pair(r, "SOLUSDT-BTCUSDT", {"window": 90})
    assert control.get_pair(r, "ETHUSDT/BTCUSDT") == after  # refused changes left it as it was


@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"),
    ({"x": "BTCUSDT"}, "y: Field required"),
    ({"y": "BTCUSDT", "x": "btcusdt"}, "two different symbols"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "window": 1}, "window"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "window": 2.5}, "window"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "beta_source": "magic"}, "beta_source"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "obs_noise": float("inf")}, "obs_noise"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "delta": float("nan")}, "delta"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "window_ms": 0}, "window_ms"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "windw": 30}, "windw"),
    ({"y": "ETHUSDT", "x": "BTCUSDT", "id": "SOLUSDT/BTCUSDT"}, "id"),
])
def test_bad_pair_bodies_name_the_field(body: object, message: str) -> None:
    with pytest.raises(control.ControlError, match=message):
        control.pair_from_body(body)


def test_a_listed_pair_can_be_sent_back_with_its_id() -> None:
    ps = control.pair_from_body({"y": "ETHUSDT", "x": "BTCUSDT", "id": "ETHUSDT/BTCUSDT"})
    assert ps.id == "ETHUSDT/BTCUSDT"


@pytest.mark.parametrize(("text", "expected"), [("ETHUSDT/BTCUSDT", ("ETHUSDT", "BTCUSDT")),
                                                ("ethusdt-btcusdt", ("ETHUSDT", "BTCUSDT"))])
def test_pair_ids(text: str, expected: tuple[str, str]) -> None:
    assert control.parse_pair_id(text) == expected


@pytest.mark.parametrize("text", ["ETHUSDT", "A-B-C", "ETHUSDT/ETHUSDT", "ETH USDT/BTCUSDT", ""])
def test_bad_pair_ids(text: str) -> None:
    with pytest.raises(control.ControlError):
        control.parse_pair_id(text)


def test_bounds(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "MAX_SYMBOLS", 3)
    monkeypatch.setattr(control, "MAX_PAIRS", 1)
    control.add_symbol(r, "AAAUSDT")
    control.add_symbol(r, "BBBUSDT")
    control.put_pair(r, control.pair_from_body({"y": "AAAUSDT", "x": "BBBUSDT"}))
    with pytest.raises(control.ControlError, match="at most 1 pairs"):
        control.put_pair(r, control.pair_from_body({"y": "BBBUSDT", "x": "AAAUSDT"}))
    control.add_symbol(r, "CCCUSDT")
    assert control.add_symbol(r, "CCCUSDT") is False  # an active one is no new symbol
    with pytest.raises(control.ControlError, match="at most 3 active symbols"):
        control.add_symbol(r, "DDDUSDT")
    monkeypatch.setattr(control, "MAX_PAIRS", 5)
    with pytest.raises(control.ControlError, match="at most 3 active symbols"):
        control.put_pair(r, control.pair_from_body({"y": "DDDUSDT", "x": "AAAUSDT"}))
    assert control.active_symbols(r) == ("AAAUSDT", "BBBUSDT", "CCCUSDT")


def test_watcher_sees_every_change_and_nothing_else(r: redis.Redis) -> None:
    w = control.Watcher(r)
    assert w.poll() == ((), {})
    assert w.poll() is None
    control.add_symbol(r, "BTCUSDT")
    assert w.poll() == (("BTCUSDT",), {})
    assert w.poll() is None
    ps = control.pair_from_body({"y": "ETHUSDT", "x": "BTCUSDT", "window": 77})
    control.put_pair(r, ps)
    seen = w.poll()
    assert seen is not None and seen[0] == ("BTCUSDT", "ETHUSDT") and seen[1] == {"ETHUSDT/BTCUSDT": ps}
    control.update_pair(r, ps.id, {"window": 78})
    seen = w.poll()
    assert seen is not None and seen[1]["ETHUSDT/BTCUSDT"].window == 78
    # a second watcher (another process) starts from the current state
    assert control.Watcher(r).poll() == (("BTCUSDT", "ETHUSDT"), {"ETHUSDT/BTCUSDT": seen[1]["ETHUSDT/BTCUSDT"]})


def test_malformed_entries_are_skipped_not_fatal(r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    good = control.pair_from_body({"y": "ETHUSDT", "x": "BTCUSDT"})
    control.put_pair(r, good)
    r.hset(control.PAIRS_KEY, mapping={
        "SOLUSDT/BTCUSDT": "{not json",
        "XRPUSDT/BTCUSDT": json.dumps({"y": "XRPUSDT", "x": "BTCUSDT", "window": -5}),
        "ADAUSDT/BTCUSDT": good.model_dump_json(),  # the key names another pair than its settings
    })
    r.sadd(control.SYMBOLS_KEY, "not a symbol", "lower")
    with caplog.at_level("WARNING", logger="qs_common.control"):
        assert control.active_pairs(r) == {"ETHUSDT/BTCUSDT": good}
        control.active_pairs(r)
    assert sum("skipped" in m for m in caplog.messages) == 3  # once per entry, not once per read
    assert control.active_symbols(r) == ("BTCUSDT", "ETHUSDT")
    assert control.get_pair(r, "SOLUSDT-BTCUSDT") is None
    w = control.Watcher(r)
    assert w.poll() == (("BTCUSDT", "ETHUSDT"), {"ETHUSDT/BTCUSDT": good})


def test_any_valid_setting_seeds(r: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    """The registry's bounds are the settings' bounds: no value start-up accepts can fail the seed."""
    s = settings(ols_window=100_000, analytics_window_ms=2_592_000_000, kalman_delta=0.999, kalman_obs_noise=1e300,
                 beta_source="theilsen", analytics_price="mid")
    assert control.seed(r, s) is True
    ps = control.active_pairs(r)["ETHUSDT/BTCUSDT"]
    assert (ps.window, ps.window_ms, ps.delta, ps.obs_noise, ps.price_source) == (100_000, 2_592_000_000, 0.999,
                                                                                   1e300, "mid")
    for name, bad in (("ANALYTICS_WINDOW_MS", 2_592_000_001), ("KALMAN_OBS_NOISE", "inf")):
        with pytest.raises(SystemExit):
            settings(**{name.lower(): bad})
        assert f"invalid setting {name}" in capsys.readouterr().err


def test_a_string_decoding_client_reads_the_same_registry(redis_server) -> None:  # type: ignore[no-untyped-def]
    raw = redis_server.client()
    text = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    settings = load_settings(symbols="BTCUSDT,ETHUSDT", pairs="ETHUSDT/BTCUSDT")
    control.seed(raw, settings)
    assert control.active_pairs(text) == control.active_pairs(raw) and list(control.active_pairs(text)) == [
        "ETHUSDT/BTCUSDT"]
    assert control.get_pair(text, "ETHUSDT-BTCUSDT") == control.get_pair(raw, "ETHUSDT/BTCUSDT") is not None
    assert control.active_symbols(text) == ("BTCUSDT", "ETHUSDT")
    text.close()
