"""The candle group alone: ticks/s acknowledged, in-process and as `python -m worker --role candles`, and the size
of the de-duplication state (trade-id runs) against the table of every trade it replaced.

Prints figures; asserts nothing. Starts its own redis-server (127.0.0.1 only) and stops it. Run from the repository
root: `python bench/bench_candles.py [--ticks 300000] [--batches 5000,20000] [--profile FILE] [--no-subprocess]`.
The pre-loaded ticks are bench.common's (the recordings looped: 23 % trades, 77 % book tickers, trade ids unique).
In-process: the consumer loop (GroupConsumer with flat fields, as the worker builds it) and the CandleHandler on a
DuckDB file, in this process; CPU = this process's user + sys (DuckDB's threads included) per entry.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RECORDINGS, group_acked, load, machine, preload_ticks, redis_server  # noqa: E402

REALDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "realdata" / "BTCUSDT-1m-2024-08-08.csv"


def in_process(r: redis.Redis, n: int, batch: int, tmp: Path, profile: Path | None) -> tuple[float, float, str]:
    """Entries/s (wall) and CPU µs per entry of the candle consumer over `n` pre-loaded ticks."""
    got = in_process_detail(r, n, batch, tmp, profile)
    return float(got["rate"]), float(got["cpu_us"]), str(got["load"])


def server_cpu_s(r: redis.Redis) -> float:
    """redis-server's CPU seconds so far (user + sys, all its threads)."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def in_process_detail(r: redis.Redis, n: int, batch: int, tmp: Path, profile: Path | None) -> dict[str, float | str]:
    """`in_process`'s figures, plus redis-server's CPU µs per entry over the same run (the server shares the two
    cores: what it spends per entry bounds the wall rate as much as the consumer's own CPU)."""
    from worker.candle_consumer import CandleHandler
    from worker.consumer import GroupConsumer
    from worker.store import CandleStore

    r.flushall()
    preload_ticks(r, n, groups=("candles",))
    store = CandleStore(tmp / f"inproc-{batch}.duckdb")
    handler = CandleHandler(store, r, 48 * 3_600_000)
    consumer = GroupConsumer(r, "stream:ticks", "candles", "bench", handler, batch=batch, flat_fields=True)
    stop = threading.Event()
    process = consumer._process

    def counted(entries: list[tuple[bytes, object]]) -> None:  # stop once everything is acknowledged
        process(entries)
        if consumer.stats.entries >= n:
            stop.set()

    consumer._process = counted  # type: ignore[method-assign]
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: the load inflates waits
    la = load()
    server0 = server_cpu_s(r)
    cpu0, t0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    consumer.run(stop)
    if prof:
        prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = server_cpu_s(r) - server0
    store.close()
    if prof and profile:
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
        profile.write_text(text.getvalue())
    assert group_acked(r)["candles"] == n and handler.trades > 0
    return {"rate": n / wall, "cpu_us": cpu / n * 1e6, "server_us": server / n * 1e6, "load": la}


def subprocess_run(redis_url: str, r: redis.Redis, n: int, batch: int, tmp: Path) -> tuple[float | None, str]:
    from bench.bench_pipeline import worker_run

    res = worker_run(redis_url, r, n, tmp, f"candles-{batch}", role="candles", WORKER_BATCH=str(batch))
    steady, overall, note = res["candles"]
    return steady, f"overall {overall or 0:,.0f}/s {note}".strip()


def real_rates() -> dict[str, float]:
    """Trades per day: BTCUSDT from Binance's own klines of 2024-08-08 (sum of the trade counts), ETHUSDT by its
    ratio to BTCUSDT in the recordings of the same day (no ETH klines file)."""
    per_recording = {}
    for path in RECORDINGS:
        with gzip.open(path, "rb") as fh:
            per_recording[path.name[:3].upper()] = sum(1 for line in fh if b'@trade"' in line[:80])
    btc_day = sum(int(line.split(",")[8]) for line in REALDATA.read_text().splitlines())
    return {"BTCUSDT": btc_day, "ETHUSDT": btc_day * per_recording["ETH"] / per_recording["BTC"]}


def table_sizes(tmp: Path, hours: float = 48) -> list[tuple[str, str]]:
    """The old table of every trade vs the trade-id runs, for `hours` of real rates, as DuckDB files on disk."""
    import duckdb

    rows: list[tuple[str, str]] = []
    rates = real_rates()
    counts = {s: int(day * hours / 24) for s, day in rates.items()}
    total = sum(counts.values())
    for label, ddl, fill in (
        ("table of every trade (before)",
         "CREATE TABLE trades (symbol VARCHAR NOT NULL, trade_id BIGINT NOT NULL, price DECIMAL(38, 8) NOT NULL, "
         "qty DECIMAL(38, 8) NOT NULL, trade_time_ms BIGINT NOT NULL, buyer_is_maker BOOLEAN NOT NULL, "
         "PRIMARY KEY (symbol, trade_id))",
         "INSERT INTO trades SELECT $sym, 3700000000 + i, 61000 + (i % 100000) / 100, (i % 997 + 1) / 10000, "
         "1723075200000 + i * $step, i % 2 = 0 FROM range($n) t(i)"),
        ("trade-id runs (now), contiguous ids",
         "CREATE TABLE trade_runs (symbol VARCHAR NOT NULL, first_id BIGINT NOT NULL, last_id BIGINT NOT NULL, "
         "newest_ms BIGINT NOT NULL)",
         "INSERT INTO trade_runs SELECT $sym, 3700000000, 3700000000 + $n - 1, 1723075200000 + $n * $step"),
    ):
        path = tmp / f"size-{len(rows)}.duckdb"
        con = duckdb.connect(str(path))
        con.execute(ddl)
        for sym, cnt in counts.items():
            con.execute(fill, {"sym": sym, "n": cnt, "step": int(hours * 3_600_000 / cnt)})
        con.execute("CHECKPOINT")
        con.close()
        rows.append((label, f"{path.stat().st_size / 2**20:,.1f} MiB on disk for {total:,} trades "
                            f"({', '.join(f'{s} {c:,}' for s, c in counts.items())})"))
    rows.append(("real rates used", ", ".join(f"{s} {d:,.0f} trades/day" for s, d in rates.items())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=300_000)
    ap.add_argument("--batches", default="5000,20000", help="WORKER_BATCH values to measure")
    ap.add_argument("--profile", type=Path, help="cProfile of the in-process run (first batch size) to this file")
    ap.add_argument("--no-subprocess", action="store_true")
    ap.add_argument("--no-sizes", action="store_true")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; load {load()}")
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-candles-") as d:
        tmp = Path(d)
        with redis_server(tmp / "redis") as rs:
            r = rs.client()
            for i, batch in enumerate(int(b) for b in a.batches.split(",")):
                got = in_process_detail(r, a.ticks, batch, tmp, a.profile if i == 0 else None)
                rows.append((f"candles in-process, WORKER_BATCH={batch}",
                             f"{got['rate']:,.0f} /s ({got['cpu_us']:.2f} µs CPU/entry, redis-server "
                             f"{got['server_us']:.2f} µs/entry)", str(got["load"])))
                print(rows[-1], flush=True)
                if not a.no_subprocess:
                    steady, note = subprocess_run(rs.url, r, a.ticks, batch, tmp)
                    rows.append((f"`python -m worker --role candles`, WORKER_BATCH={batch}",
                                 f"{steady or 0:,.0f} /s ({note})", load()))
                    print(rows[-1], flush=True)
            r.close()
        if not a.no_sizes:
            rows.extend((what, value, load()) for what, value in table_sizes(tmp))
    print("\n| what | figure | load avg |\n| --- | --- | --- |")
    for what, value, la in rows:
        print(f"| {what} | {value} | {la} |")
    if a.profile:
        print(f"\ncProfile (tottime) of the in-process run: {a.profile}")
        print(a.profile.read_text())


if __name__ == "__main__":
    main()
