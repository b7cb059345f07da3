"""Sharded workers (issue 14): ticks/s acknowledged by 1, 2 and 4 worker processes on the same input.

Prints figures; asserts nothing. Starts its own redis-server (127.0.0.1 only) and stops it. Run from the repository
root: `python bench/bench_shards.py [--ticks 240000] [--symbols 12] [--procs 1,2,4] [--roles candles,analytics]`.

Input: the recordings looped (bench.common's encoded ticks, 23 % trades, 77 % book tickers), dealt round-robin to
`--symbols` symbols, each symbol's ticks in its own stream `stream:ticks:{SYM}` (TICK_PARTITIONING=symbol), trade
ids unique, receive times increasing. Pairs: consecutive symbols (S/2 pairs), so every symbol is a leg once.
For each P: P processes `python -m worker --role R` with SHARD=k/P (candles: a DuckDB file each), started together
on the pre-loaded streams (every group at id 0); the rate is the sum over every stream of acknowledged entries,
steady (between 10 % and 90 % of the total), with the CPU seconds the worker processes (/proc) and redis-server
(INFO cpu) spent per entry over the same span: on a shared machine the rate follows the load, the CPU per entry
does not. With crc32 mod P a
shard may own more symbols or pairs than another: the owned counts are printed, and the slowest shard sets the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    free_port,
    load,
    machine,
    recorded_frames,
    redis_server,
    service_env,
    start_module,
    stop,
)
from qs_common.partition import shard_of  # noqa: E402

# Real symbol names: CRC-32 is linear over GF(2), so crc32 mod 2^k of names that differ in a digit or two (S00USDT,
# S01USDT, ...) can all land on one shard (they do, for 2 and 4); listed symbols differ in more bits.
SYMBOL_NAMES = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "LINKUSDT",
                "DOTUSDT", "LTCUSDT", "TRXUSDT")


def symbols_of(n: int) -> list[str]:
    if not 2 <= n <= len(SYMBOL_NAMES):
        raise SystemExit(f"--symbols: 2..{len(SYMBOL_NAMES)}")
    return list(SYMBOL_NAMES[:n])


def pairs_of(symbols: list[str]) -> list[str]:
    return [f"{symbols[i + 1]}/{symbols[i]}" for i in range(0, len(symbols) - 1, 2)]


def stream_of(symbol: str) -> str:
    return "stream:ticks:{" + symbol + "}"


def preload(r: redis.Redis, n: int, symbols: list[str], groups: dict[str, list[str]]) -> None:
    """`n` ticks dealt round-robin to the symbols' streams; `groups`: stream -> groups created at id 0 first."""
    from ingest.parser import parse_frame
    from qs_common import codec

    encoded = [codec.encode(parse_frame(0, f)) for f in recorded_frames()]  # type: ignore[arg-type]
    r.flushall()
    for stream, names in groups.items():
        for g in names:
            r.xgroup_create(stream, g, id="0", mkstream=True)
    now_ns = time.time_ns()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        fields = dict(encoded[i % len(encoded)])
        sym = symbols[i % len(symbols)]
        fields["sym"] = sym
        fields["recv"] = now_ns + i
        if fields["kind"] == "trade":
            fields["id"] = i + 1
        pipe.xadd(stream_of(sym), fields)  # type: ignore[arg-type]
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the processes so far (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def redis_cpu_s(r: redis.Redis) -> float:
    info: Any = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def acked(r: redis.Redis, streams: list[str], prefix: str) -> int:
    """Entries acknowledged on every stream by the groups whose name starts with `prefix`."""
    total = 0
    for stream in streams:
        for g in r.xinfo_groups(stream):  # type: ignore[union-attr]
            if g["name"].decode().startswith(prefix):
                total += int(g.get("entries-read") or 0) - int(g["pending"])
    return total


def groups_for(role: str, p: int, symbols: list[str], pairs: list[str]) -> tuple[dict[str, list[str]], int]:
    """Stream -> groups at id 0, and the entries the role must acknowledge in all (analytics: a symbol's stream is
    read by the shard of each pair it is a leg of and by the shard that owns the symbol)."""
    if role == "candles":
        return {stream_of(s): ["candles"] for s in symbols}, 0
    out: dict[str, set[str]] = {stream_of(s): set() for s in symbols}
    for pid in pairs:
        for leg in pid.split("/"):
            out[stream_of(leg)].add(f"analytics-{shard_of(pid, p)}of{p}" if p > 1 else "analytics")
    for s in symbols:
        out[stream_of(s)].add(f"analytics-{shard_of(s, p)}of{p}" if p > 1 else "analytics")
    return {k: sorted(v) for k, v in out.items()}, sum(len(v) for v in out.values())


Sample = tuple[float, int, float, float]  # (time, acknowledged, workers' CPU s, redis-server's CPU s)


def steady(samples: list[Sample], total: int) -> tuple[float | None, float | None, float | None]:
    """Between the samples at 10 % and 90 % acknowledged: entries/s, and CPU µs per entry of the workers and of
    redis-server (CPU per entry does not depend on what else the machine runs; the rate does)."""
    a = next((s for s in samples if s[1] >= total // 10), None)
    b = next((s for s in samples if s[1] >= total * 9 // 10), None)
    if a is None or b is None or b[1] <= a[1] or b[0] <= a[0]:
        return None, None, None
    n = b[1] - a[1]
    return n / (b[0] - a[0]), (b[2] - a[2]) / n * 1e6, (b[3] - a[3]) / n * 1e6


def run(server: Any, role: str, p: int, n: int, symbols: list[str], pairs: list[str], tmp: Path,
        timeout: float) -> tuple[tuple[float | None, float | None, float | None], str]:
    r = server.client()
    groups, reads = groups_for(role, p, symbols, pairs)
    preload(r, n, symbols, groups)
    total = n if role == "candles" else n * reads // len(symbols)  # round-robin: n / S entries a stream
    prefix = "candles" if role == "candles" else "analytics"
    procs = []
    for k in range(p):
        env = service_env(server.url, SHARD=f"{k}/{p}", TICK_PARTITIONING="symbol", SYMBOLS=",".join(symbols),
                          PAIRS=",".join(pairs), DATA_DIR=str(tmp / f"{role}-{p}-{k}"), API_PORT=str(free_port()),
                          LOG_LEVEL="WARNING", CONSUMER_NAME=f"bench-{k}")
        env["API_ADVERTISE_URL"] = f"http://127.0.0.1:{env['API_PORT']}"
        procs.append(start_module("worker", env, tmp / f"{role}-{p}-{k}.log", "--role", role))
    samples: list[Sample] = []
    pids = [x.pid for x in procs]
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout and any(x.poll() is None for x in procs):
            done = acked(r, list(groups), prefix)
            samples.append((time.monotonic(), done, cpu_s(pids), redis_cpu_s(r)))
            if done >= total:
                break
            time.sleep(0.1)
    finally:
        for x in procs:
            stop(x, timeout=60)
    done = samples[-1][1] if samples else 0
    owned = [sum(1 for s in symbols if shard_of(s, p) == k) if role == "candles"
             else sum(1 for q in pairs if shard_of(q, p) == k) for k in range(p)]
    note = f"owned {'symbols' if role == 'candles' else 'pairs'} per shard {owned}"
    if role == "analytics":  # a stream is read by each shard with a pair it is a leg of, and by its symbol's owner
        note += f"; {total / n:.2f} stream reads per tick (divide entries/s by it for ticks/s)"
    if done < total:
        note += f"; only {done:,}/{total:,} acknowledged within {timeout:.0f} s"
    return steady(samples, total), note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=240_000)
    ap.add_argument("--symbols", type=int, default=12)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--roles", default="candles,analytics")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    symbols = symbols_of(args.symbols)
    pairs = pairs_of(symbols)
    print(f"machine: {machine()}")
    print(f"input: {args.ticks:,} ticks over {len(symbols)} symbols ({len(pairs)} pairs), one stream per symbol")
    with tempfile.TemporaryDirectory() as d, redis_server(Path(d) / "redis") as server:
        tmp = Path(d)
        for role in args.roles.split(","):
            for p in (int(x) for x in args.procs.split(",")):
                la = load()
                (rate, cpu, rcpu), note = run(server, role, p, args.ticks, symbols, pairs, tmp, args.timeout)
                print(f"{role:9s} P={p}: {rate or 0:>7,.0f} entries/s; CPU per entry: workers {cpu or 0:5.1f} µs, "
                      f"redis-server {rcpu or 0:4.1f} µs; load before {la}; {note}", flush=True)


if __name__ == "__main__":
    main()
