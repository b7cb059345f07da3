"""Memory of each worker process, per role: idle after start-up and after a short paced feed (issue 12).

Two layouts, one after the other against the same private redis-server: `split` (the default of the launcher and
compose: `--role candles`, `--role analytics`, `--role book` running together) and `all` (`python -m worker`, one
process). For each process it reads /proc/PID/smaps_rollup: RSS, PSS (shared pages divided among the processes
mapping them: the figure that adds up across processes), USS (private pages: what ending it would free) and the
anonymous pages (the heap: unlike PSS and USS, not changed by other programs mapping the same libraries, which
on a shared machine move a library's pages between "private" and "shared" from one run to the next).
"Idle" is after every consumer has written its first status record and a few quiet seconds; "load" is the peak
over `--seconds` of the recorded trades and book tickers paced at `--rate` frames/s through the real ingest
(DEPTH=false: the book process has nothing to read, as with the default settings).

`--root DIR` runs the worker of another checkout (e.g. `git archive` of an older commit) for before/after pairs.
Prints figures; asserts nothing. Starts its own redis-server and local WebSocket server (127.0.0.1 only).
Run from the repository root: `python -m bench.bench_roles_memory [--rate 2000] [--seconds 30] [--root DIR]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    WsServer,
    free_port,
    load,
    machine,
    redis_server,
    service_env,
    start_module,
    stop,
    wait_first_ticks,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
LAYOUTS: dict[str, tuple[str, ...]] = {"split": ("candles", "analytics", "book"), "all": ("all",)}
# the status records each role writes once its consumers run (worker/service.py's status loop)
READY: dict[str, tuple[str, ...]] = {"candles": ("worker-candles", "worker-api"), "analytics": ("worker-analytics",),
                                     "book": ("worker-book",)}
READY["all"] = READY["candles"] + READY["analytics"] + READY["book"]
FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous")
KINDS = ("rss", "pss", "uss", "anon")


def smaps(pid: int) -> dict[str, float] | None:
    """RSS, PSS, USS and anonymous memory of a process in MB (None once it has exited)."""
    kb: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in FIELDS:
                    kb[name] = int(rest.split()[0])
    except OSError:
        return None
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024,
            "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, "anon": kb["Anonymous"] / 1024}


def wait_ready(r: Any, roles: tuple[str, ...], procs: dict[str, Any], log_dir: Path, timeout: float = 180) -> None:
    wanted = {f"status:{name}" for role in roles for name in READY[role]}
    deadline = time.monotonic() + timeout
    while not all(r.exists(k) for k in wanted):
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise SystemExit(f"{', '.join(dead) or 'the workers'} did not start, see {log_dir}/worker-*.log")
        time.sleep(0.2)


def layout_run(url: str, r: Any, tmp: Path, layout: str, rate: float, seconds: float, settle: float,
               root: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per process: {"idle": {rss, pss, uss}, "load": peak of each over the paced feed}."""
    r.flushall()
    data = tmp / f"data-{layout}"
    data.mkdir(exist_ok=True)
    roles = LAYOUTS[layout]
    wenv = service_env(url, DATA_DIR=str(data), API_HOST="127.0.0.1", SYMBOLS=",".join(SYMBOLS), LOG_LEVEL="WARNING")
    procs: dict[str, Any] = {}
    out: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for role in roles:
            args = () if role == "all" else ("--role", role)
            procs[role] = start_module("worker", dict(wenv, API_PORT=str(free_port())),
                                       tmp / f"worker-{layout}-{role}.log", *args, root=root)
        wait_ready(r, roles, procs, tmp)
        time.sleep(settle)
        for role, p in procs.items():
            idle = smaps(p.pid)
            if idle is None:
                raise SystemExit(f"worker --role {role} exited, see {tmp}")
            out[role] = {"idle": idle, "load": dict(idle)}
        with WsServer(rate=rate) as ws:
            ienv = service_env(url, SOURCE="binance", BINANCE_WS_URL=ws.url, SYMBOLS=",".join(SYMBOLS),
                               LOG_LEVEL="WARNING")
            procs["ingest"] = ingest = start_module("ingest", ienv, tmp / f"ingest-{layout}.log")
            wait_first_ticks(r, ingest, tmp / f"ingest-{layout}.log")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for role in roles:
                    now = smaps(procs[role].pid)
                    if now is None:
                        raise SystemExit(f"worker --role {role} exited under load, see {tmp}")
                    peak = out[role]["load"]
                    for k, v in now.items():
                        peak[k] = max(peak[k], v)
                time.sleep(1.0)
            acked = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g["entries-read"]
                     for g in r.xinfo_groups("stream:ticks")}
            print(f"  {layout}: entries read per group after {seconds:g} s at {rate:g} frames/s: {acked}", flush=True)
    finally:
        for p in procs.values():
            stop(p, timeout=60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=2_000.0, help="frames/s of the paced feed")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the paced feed")
    ap.add_argument("--settle", type=float, default=5.0, help="quiet seconds after start-up before the idle sample")
    ap.add_argument("--layouts", default="split,all")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose worker runs (default this one)")
    a = ap.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']} CPython {m['python']} redis {m['redis']}; root {a.root}; "
          f"load {load()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-roles-memory-") as d, redis_server(Path(d) / "redis") as rs:
        for layout in a.layouts.split(","):
            res = layout_run(rs.url, rs.client(), Path(d), layout, a.rate, a.seconds, a.settle, a.root.resolve())
            la = load()
            for role, v in res.items():
                rows.append((layout, role, v, la))
            if len(res) > 1:
                total = {when: {k: sum(v[when][k] for v in res.values()) for k in KINDS}
                         for when in ("idle", "load")}
                rows.append((layout, "together", total, la))
    print(f"\n| layout | process | idle RSS / PSS / USS / anon MB | under {a.rate:g} frames/s for {a.seconds:g} s "
          "(peak of each) | load avg |")
    print("| --- | --- | ---: | ---: | --- |")
    for layout, role, v, la in rows:
        i, lo = v["idle"], v["load"]
        print(f"| {layout} | {role} | {' / '.join(f'{i[k]:.0f}' for k in KINDS)} | "
              f"{' / '.join(f'{lo[k]:.0f}' for k in KINDS)} | {la} |")


if __name__ == "__main__":
    main()
