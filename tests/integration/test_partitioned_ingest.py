"""Partitioned ingest (issue 14): the recordings replayed by `python -m ingest` into one tick stream per symbol on a
real Redis Cluster (three redis-server masters), checked against an independent reading of the recordings and
against the same replay into the single stream of a single redis-server."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.rewind import parse_id
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.integration.procs import run_replay, status
from tests.recordings import frames

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BAD_LINES = (b"{not json", b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":-5}}', b"\xff\xfe")


def stream_of(symbol: str) -> str:
    return "stream:ticks:{" + symbol + "}"


def recording_with_bad_frames(src: Path, dst: Path, lines: int | None = None, bad: bool = True) -> Path:
    """A copy of a recording (its first `lines` lines) with BAD_LINES spread through it (unless not `bad`), each
    stamped like its neighbour."""
    out = []
    for i, (ns, raw) in enumerate(frames(src)[:lines]):
        out.append(b"%d %s" % (ns, raw))
        if bad and i in (100, 2_000, 5_000):
            out.append(b"%d %s" % (ns, BAD_LINES[(100, 2_000, 5_000).index(i)]))
    with gzip.open(dst, "wb") as fh:
        fh.write(b"\n".join(out) + b"\n")
    return dst


def expected_ticks(paths: list[Path]) -> Counter[tuple[str, str, str]]:
    """(symbol, kind, id or update id) of every trade and book-ticker frame of the recordings, read without the
    product's parser."""
    import json

    out: Counter[tuple[str, str, str]] = Counter()
    for p in paths:
        for _, raw in frames(p):
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            name, data = doc.get("stream", ""), doc.get("data") or {}
            if name.endswith("@trade") and data.get("t", -1) >= 0:
                out[(data["s"], "trade", str(data["t"]))] += 1
            elif name.endswith("@bookTicker"):
                out[(data["s"], "quote", str(data["u"]))] += 1
    return out


def stream_ticks(r: Any, stream: str) -> list[dict[bytes, bytes]]:
    return [f for _, f in r.xrange(stream)]


def keyed(entries: list[dict[bytes, bytes]]) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for f in entries:
        kind = f[b"kind"].decode()
        out[(f[b"sym"].decode(), "trade" if kind == "trade" else "quote", f[b"id"].decode())] += 1
    return out


def canonical(entries: list[dict[bytes, bytes]]) -> Counter[tuple[tuple[bytes, bytes], ...]]:
    """Entries as sorted field tuples (the receive stamp kept: both runs replay the same frames)."""
    return Counter(tuple(sorted(f.items())) for f in entries)


def test_replay_into_a_redis_cluster_publishes_every_frame_once_per_symbol_stream(tmp_path, cluster, redis_server):
    # the recordings' first 8,000 lines (trades, book tickers and depth of both symbols, every bad line, well past
    # STREAM_MAXLEN): each frame's routing does not depend on how many follow, and two replays of the whole days
    # took a minute of the suite
    files = [recording_with_bad_frames(BTC_RECORDING, tmp_path / "btcusdt_bad.gz", 8_000),
             recording_with_bad_frames(ETH_RECORDING, tmp_path / "ethusdt.gz", 8_000, bad=False)]
    env = {"SYMBOLS": ",".join(SYMBOLS), "REDIS_CLUSTER": "true", "STREAM_MAXLEN": "1000", "DEPTH": "true"}
    run_replay(cluster.url, files, tmp_path / "ingest-cluster.log", timeout=300, **env)
    rc = cluster.client()
    st = status(rc, "ingest")  # type: ignore[arg-type]  # at once: the record lives 10 s after the last write

    # the two streams are on different masters of the three (their hash tags' slots), and nothing else got ticks
    assert cluster.master_of(stream_of("BTCUSDT")).port != cluster.master_of(stream_of("ETHUSDT")).port
    assert rc.exists("stream:ticks") == 0
    expected = expected_ticks(files)
    per_stream = {s: stream_ticks(rc, stream_of(s)) for s in SYMBOLS}
    for s in SYMBOLS:
        assert {f[b"sym"].decode() for f in per_stream[s]} == {s}
        assert keyed(per_stream[s]) == Counter({k: n for k, n in expected.items() if k[0] == s})  # each once
        assert all(n == 1 for n in keyed(per_stream[s]).values())
        # group `candles` at id 0 before the first entry, nothing delivered yet; analytics groups are the shards'
        groups = {g["name"].decode(): g for g in rc.xinfo_groups(stream_of(s))}
        assert set(groups) == {"candles"} and parse_id(groups["candles"]["last-delivered-id"]) == (0, 0)
    # STREAM_MAXLEN=1000, but nothing unread is ever trimmed
    assert all(len(v) > 1_000 for v in per_stream.values())

    dead = [f for _, f in rc.xrange("stream:deadletter")]
    assert sorted(f[b"raw"] for f in dead) == sorted(BAD_LINES)
    assert rc.xlen("stream:depth") > 0 and {g["name"] for g in rc.xinfo_groups("stream:depth")} == {b"book"}

    total = sum(expected.values())
    assert st["state"] == "done" and st["published"] == total and st["dead_letters"] == len(BAD_LINES)
    assert st["backlog_over_bound"] is True and st["backlog"] == total and st["redis_ok"] is True
    assert st["redis_rewinds"] == 0
    log = (tmp_path / "ingest-cluster.log").read_text()
    assert "housekeeping failed" not in log and "Traceback" not in log

    # the same replay into one redis-server, default settings: the single stream as always, the same entries
    r = redis_server.client()
    run_replay(redis_server.url, files, tmp_path / "ingest-single.log", timeout=300, SYMBOLS=",".join(SYMBOLS),
               DEPTH="true")
    st_single = status(r, "ingest")
    single = stream_ticks(r, "stream:ticks")
    assert canonical(single) == canonical(per_stream["BTCUSDT"] + per_stream["ETHUSDT"])
    assert not r.keys("stream:ticks:*")
    assert {g["name"] for g in r.xinfo_groups("stream:ticks")} == {b"candles", b"analytics"}
    assert sorted(f[b"raw"] for _, f in r.xrange("stream:deadletter")) == sorted(BAD_LINES)
    assert st_single["published"] == total
    # depth diffs and snapshots: one stream in both modes, the same entries
    assert canonical(stream_ticks(r, "stream:depth")) == canonical(stream_ticks(rc, "stream:depth"))
    assert st_single["depth_published"] == st["depth_published"] == rc.xlen("stream:depth")


def test_each_symbol_stream_is_trimmed_only_past_what_its_group_acknowledged(tmp_path, cluster):
    files = [recording_with_bad_frames(BTC_RECORDING, tmp_path / "btc.gz", 6_000),
             recording_with_bad_frames(ETH_RECORDING, tmp_path / "eth.gz", 6_000)]
    env = {"SYMBOLS": ",".join(SYMBOLS), "REDIS_CLUSTER": "true", "STREAM_MAXLEN": "1000"}
    run_replay(cluster.url, files, tmp_path / "ingest1.log", timeout=300, **env)
    rc: Any = cluster.client()
    first = {s: rc.xlen(stream_of(s)) for s in SYMBOLS}
    # a candle consumer reads and acknowledges all of BTCUSDT's stream; ETHUSDT's stays unread
    read = rc.xreadgroup("candles", "c1", {stream_of("BTCUSDT"): ">"}, count=100_000)
    ids = [eid for eid, _ in read[0][1]]
    assert len(ids) == first["BTCUSDT"]
    rc.xack(stream_of("BTCUSDT"), "candles", *ids)

    run_replay(cluster.url, files, tmp_path / "ingest2.log", timeout=300, **env)
    st = status(rc, "ingest")
    btc, eth = rc.xlen(stream_of("BTCUSDT")), rc.xlen(stream_of("ETHUSDT"))
    assert eth == 2 * first["ETHUSDT"]  # unread: kept whole
    # acknowledged entries beyond the bound are gone; the second run's (unread) entries all kept
    assert btc == first["BTCUSDT"]
    oldest = parse_id(rc.xrange(stream_of("BTCUSDT"), count=1)[0][0])
    assert oldest > parse_id(ids[-1])
    assert st["backlog"] == btc + eth and st["backlog_over_bound"] is True


def test_partitioned_mode_on_a_single_redis_server(tmp_path, redis_server):
    """TICK_PARTITIONING=symbol without a cluster: the same per-symbol streams on one node."""
    files = [recording_with_bad_frames(BTC_RECORDING, tmp_path / "btc.gz", 3_000),
             recording_with_bad_frames(ETH_RECORDING, tmp_path / "eth.gz", 3_000, bad=False)]
    run_replay(redis_server.url, files, tmp_path / "ingest.log", timeout=300, SYMBOLS=",".join(SYMBOLS),
               TICK_PARTITIONING="symbol")
    r: redis.Redis = redis_server.client()
    st = status(r, "ingest")
    expected = expected_ticks(files)
    got = keyed(stream_ticks(r, stream_of("BTCUSDT")) + stream_ticks(r, stream_of("ETHUSDT")))
    assert got == expected and r.exists("stream:ticks") == 0
    assert st["published"] == sum(expected.values())
