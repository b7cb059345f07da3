"""End-to-end analytics: worker ticks/s with every analytics entry published, and the latency from ingest's
receipt of a trade (`recv`, ns) to the worker's XADD of the pair update it triggers on `stream:analytics`.

The latency is the analytics entry id's millisecond (Redis's clock at the XADD) minus the triggering trade's
`recv`, the trade found by `ts` (the local WebSocket server gives every trade a unique, increasing trade time), which
also splits it at the tick's own entry id into ingest's part and the worker's. Both clocks are this machine's; the
entry id has 1 ms resolution, so each figure is ±1 ms. Beside each run: every process's CPU µs per frame sent over
the window (from /proc: what the path costs, however busy the machine), and the window's slowest seconds.

Prints figures; asserts nothing. Starts its own redis-server and local WebSocket server (127.0.0.1 only).
Run from the repository root: `python bench/bench_latency.py [--ticks 300000] [--rate 5000] [--seconds 20]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pipeline import fmt, worker_run  # noqa: E402
from bench.common import (  # noqa: E402
    WsServer,
    free_port,
    load,
    machine,
    pct,
    pyspy_record,
    pyspy_summary,
    redis_server,
    service_env,
    start_module,
    stop,
    wait_first_ticks,
)
from qs_common import codec  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Every observation published, and alert rules evaluated on each: the whole analytics path is on.
ALL_ON = {"ANALYTICS_MAX_RATE": "100000"}


def add_rules(r: redis.Redis) -> None:
    from qs_analytics.alerts import AlertRule

    rules = [
        AlertRule.from_expression("z", "|zscore| >= 2", hysteresis=0.5, cooldown_ms=1000),
        AlertRule.from_expression("corr", "corr < 0.5", hysteresis=0.1, cooldown_ms=1000),
        AlertRule.from_expression("beta", "ols_beta > 1", cooldown_ms=1000),
    ]
    r.hset("alerts:rules", mapping={rule.id: rule.to_json() for rule in rules})


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: what a figure costs, whatever else shares the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_run(url: str, r: redis.Redis, tmp: Path, label: str, rate: float, warmup: float, seconds: float,
                profile: Path | None = None, split: bool = False, **ingest_env: str) -> dict[str, object]:
    r.flushall()
    add_rules(r)
    data = tmp / f"data-lat-{label}"
    data.mkdir()
    wenv = service_env(url, DATA_DIR=str(data), API_PORT=str(free_port()), API_HOST="127.0.0.1",
                       SYMBOLS=",".join(SYMBOLS), LOG_LEVEL="WARNING", **ALL_ON)
    # split: candles and analytics in two processes (`--role`), so they do not share one GIL
    worker = start_module("worker", wenv, tmp / f"worker-lat-{label}.log", "--role", "analytics" if split else "all")
    extra = None
    if split:
        cenv = dict(wenv, API_PORT=str(free_port()))
        extra = start_module("worker", cenv, tmp / f"worker-lat-{label}-candles.log", "--role", "candles")
    ingest = None
    spy = None
    try:
        with WsServer(rate=rate) as ws:
            # the worker's consumers create the groups at id 0; wait for them, so nothing is read late
            deadline = time.monotonic() + 60
            while len(r.xinfo_groups("stream:ticks") if r.exists("stream:ticks") else []) < 2:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start, see {tmp / f'worker-lat-{label}.log'}")
                time.sleep(0.2)
            ienv = service_env(url, SOURCE="binance", BINANCE_WS_URL=ws.url, SYMBOLS=",".join(SYMBOLS),
                               LOG_LEVEL="WARNING", **ingest_env)
            ingest = start_module("ingest", ienv, tmp / f"ingest-lat-{label}.log")
            wait_first_ticks(r, ingest, tmp / f"ingest-lat-{label}.log")  # start-up takes seconds under load
            time.sleep(warmup)
            procs = {"ingest": ingest, "worker": worker, **({"worker-candles": extra} if extra else {})}
            cpu0 = {name: cpu_s(p.pid) for name, p in procs.items()}
            t_from_ns = time.time_ns()
            sent0 = ws.sent.value
            if profile is not None:
                spy = pyspy_record(worker.pid, seconds, profile)
            time.sleep(seconds)
            t_to_ns = time.time_ns()
            sent = ws.sent.value
            # CPU per frame sent in the window: comparable across runs however busy the machine is
            frames = max(1, sent - sent0)
            cpu = {name: (cpu_s(p.pid) - cpu0[name]) / frames * 1e6 for name, p in procs.items()}
            stop(ingest)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # let the worker finish what ingest published
            g = {x["name"].decode(): x for x in r.xinfo_groups("stream:ticks")}
            if all(g[n]["lag"] == 0 and g[n]["pending"] == 0 for n in ("candles", "analytics")):
                break
            time.sleep(0.2)
    finally:
        if spy is not None:
            spy.wait(seconds + 30)
        if ingest is not None:
            stop(ingest)
        stop(worker, timeout=90)
        if extra is not None:
            stop(extra, timeout=90)
    ticks = r.xrange("stream:ticks")
    decoded = codec.decode_batch(ticks, books=False, times=True).trades
    trades: dict[int, tuple[int, int]] = {  # ts -> (recv ns, tick entry ms)
        ts: (recv, int(tid.split(b"-")[0])) for tid, ts, recv in zip(decoded.entry_ids, decoded.times, decoded.recvs,
                                                                    strict=True)}
    total, ingest_part, worker_part = [], [], []
    series: list[tuple[int, float]] = []  # (recv ms, latency ms): when the slow ones happened
    unmatched = 0
    analytics = r.xrange("stream:analytics")
    for aid, f in analytics:
        hit = trades.get(int(f[b"ts"]))
        if hit is None:
            unmatched += 1
            continue
        recv_ns, tick_ms = hit
        if not t_from_ns <= recv_ns < t_to_ns:
            continue
        a_ms = int(aid.split(b"-")[0])
        total.append(a_ms - recv_ns / 1e6)
        series.append((recv_ns // 1_000_000, total[-1]))
        ingest_part.append(tick_ms - recv_ns / 1e6)
        worker_part.append(a_ms - tick_ms)
    status = r.get("status:worker-analytics")
    return {"sent": sent, "ticks": len(ticks), "trades": len(trades), "analytics": len(analytics),
            "measured": len(total), "unmatched": unmatched, "total": total, "ingest": ingest_part,
            "worker": worker_part, "status": status.decode() if status else "", "load": load(),
            "cpu_us_per_frame": cpu, "slow_seconds": slow_seconds(series, t_from_ns // 1_000_000)}


def slow_seconds(series: list[tuple[int, float]], t0_ms: int, top: int = 5) -> str:
    """The seconds of the window with the largest latencies: a tail from one stall reads differently from a tail
    spread evenly."""
    worst: dict[int, float] = {}
    for recv_ms, ms in series:
        sec = (recv_ms - t0_ms) // 1000
        worst[sec] = max(worst.get(sec, 0.0), ms)
    ranked = sorted(worst.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"s{sec}: {ms:.0f} ms" for sec, ms in ranked)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=300_000, help="ticks pre-loaded for the throughput run")
    ap.add_argument("--rate", type=float, default=5_000, help="paced frames/s (trades + book tickers, both symbols)")
    ap.add_argument("--seconds", type=float, default=20.0, help="latency measuring window")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--flush-ms", default="50,2", help="PUBLISH_FLUSH_MS values of ingest to compare")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--split", default="no", choices=("no", "yes", "both"),
                    help="also run the worker as two processes (--role candles, --role analytics)")
    ap.add_argument("--profile", type=Path, help="directory for py-spy profiles of the worker")
    ap.add_argument("--keep", type=Path, help="directory for the processes' logs and data (kept after the run)")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; load {load()}")
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as d:
        tmp = a.keep or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        with redis_server(tmp / "redis") as rs:
            r = rs.client()
            if not a.skip_throughput:
                prof = a.profile / "worker-all-on.txt" if a.profile else None
                res = worker_run(rs.url, r, a.ticks, tmp, "all-on", profile=prof, setup=add_rules, **ALL_ON)
                for g, (steady, overall, note) in res.items():
                    rows.append((f"worker ticks/s, {g} group (all analytics on, every entry published)",
                                 fmt(steady), load(), f"overall {fmt(overall)}/s {note}".strip()))
                res = worker_run(rs.url, r, a.ticks, tmp, "analytics-alone", role="analytics", setup=add_rules,
                                 **ALL_ON)
                steady, overall, note = res["analytics"]
                rows.append(("worker ticks/s, analytics role alone (all on)", fmt(steady), load(),
                             f"overall {fmt(overall)}/s {note}".strip()))
            splits = {"no": [False], "yes": [True], "both": [False, True]}[a.split]
            for flush_ms, split in ((f, s) for f in a.flush_ms.split(",") for s in splits):
                tag = f"{flush_ms}{'-split' if split else ''}"
                prof = a.profile / f"worker-paced-{tag}.txt" if a.profile else None
                res2 = latency_run(rs.url, r, tmp, f"flush{tag}", a.rate, a.warmup, a.seconds, prof, split,
                                   PUBLISH_FLUSH_MS=flush_ms)
                how = "two worker processes" if split else "one worker process"
                print(f"  [paced {a.rate:g}/s, PUBLISH_FLUSH_MS={flush_ms}, {how}] server sent {res2['sent']:,}, "
                      f"ticks {res2['ticks']:,} ({res2['trades']:,} trades), analytics entries {res2['analytics']:,}, "
                      f"measured {res2['measured']:,}, unmatched {res2['unmatched']}; worker status {res2['status']}; "
                      f"slowest seconds {res2['slow_seconds']}",
                      flush=True)
                for part in ("total", "ingest", "worker"):
                    v: list[float] = res2[part]  # type: ignore[assignment]
                    what = {"total": "recv -> analytics XADD", "ingest": "recv -> tick XADD (ingest)",
                            "worker": "tick XADD -> analytics XADD (worker)"}[part]
                    figure = (f"p50 {pct(v, 50):.1f} / p99 {pct(v, 99):.1f} / p99.9 {pct(v, 99.9):.1f} / "
                              f"max {max(v):.1f} ms" if v else "n/a")
                    cpu = ", ".join(f"{k} {v:.0f}" for k, v in res2["cpu_us_per_frame"].items())  # type: ignore[attr-defined]
                    rows.append((f"latency {what}, {a.rate:g} frames/s, PUBLISH_FLUSH_MS={flush_ms}, {how}", figure,
                                 str(res2["load"]), f"n = {len(v):,}; CPU µs/frame: {cpu}"))
            r.close()
    print()
    print("| what | figure | load avg | note |")
    print("| --- | ---: | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if a.profile:
        incl = ("candle_consumer.py", "analytics_consumer.py", "engine.py", "consumer.py", "xreadgroup", "apply_trades",
                "_write", "evaluate")
        for p in sorted(a.profile.glob("worker-*.txt")):
            print(f"\npy-spy {p.name}:")
            print(pyspy_summary(p, inclusive=incl))


if __name__ == "__main__":
    main()
