"""Ingest's per-frame path in process (issue 12): `Ingest._handle_batch` over the recorded frames, from the parse
to the publisher's buffer of packed XADDs (no socket, no Redis write), CPU µs a frame.

The ingest of this tree and of an older checkout (`--before DIR`, e.g. `git worktree add /tmp/before <commit>`), each
in its own process, alternated round by round so the machine's load hits both alike; best of `--repeat` passes a
round. What `bench_ingest.py --before` shows end to end, without the WebSocket server and Redis around it.

    .venv/bin/python bench/bench_ingest_loop.py [--before DIR] [--rounds 3] [--repeat 5] [--read 64]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def measure(repeat: int, read: int) -> float:
    """CPU µs a frame of `_handle_batch` in this process (the tree first on sys.path), best of `repeat` passes."""
    import redis.asyncio as aioredis

    from bench.common import recorded_frames
    from ingest.loop import Ingest
    from qs_common.settings import Settings

    class NoSource:  # the loop is fed by hand; nothing is read
        name = "binance"

        async def items(self):  # type: ignore[no-untyped-def]
            return
            yield

    frames = recorded_frames()
    # the recordings are from 2024: skew wide; PUBLISH_BATCH above the frame count: nothing is flushed to Redis
    settings = Settings(source="binance", redis_url="redis://127.0.0.1:1/0", symbols=",".join(SYMBOLS),
                        tick_max_skew_s=3650 * 86400, publish_batch=100_000)
    app = Ingest(settings, NoSource(), aioredis.Redis())  # type: ignore[arg-type]
    now = time.time_ns()
    reads = [[(now, f) for f in frames[i:i + read]] for i in range(0, len(frames), read)]

    async def one_pass() -> None:
        for batch in reads:
            await app._handle_batch(batch)  # type: ignore[arg-type]
        app.pub._buffer.clear()  # type: ignore[union-attr]
        app.pub._meta.clear()  # type: ignore[union-attr]

    loop = asyncio.new_event_loop()
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        loop.run_until_complete(one_pass())
        best = min(best, time.process_time() - c0)
    assert app.pub.dead_letters == 0, "every recorded frame is valid"
    return best / len(frames) * 1e6


def _child(root: Path, repeat: int, read: int) -> float:
    code = (f"import sys; sys.path[:0] = [{str(root)!r}, {str(ROOT)!r}]; "
            f"from bench.bench_ingest_loop import measure; print(measure({repeat}, {read}))")
    # cwd = root: its packages come before the editable install of this tree
    out = subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="an older checkout, measured alternately with this tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--read", type=int, default=64, help="frames a socket read hands on")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.common import load

    trees = [("now", ROOT)] if a.before is None else [("before", a.before.resolve()), ("now", ROOT)]
    best: dict[str, float] = {}
    for i in range(a.rounds):
        for label, root in trees:
            us = _child(root, a.repeat, a.read)
            best[label] = min(best.get(label, float("inf")), us)
            print(f"  round {i + 1} {label}: {us:.2f} µs CPU a frame; load {load()}", flush=True)
    for label, us in best.items():
        print(f"{label}: {us:.2f} µs CPU a frame (least of {a.rounds} rounds), load {load()}")


if __name__ == "__main__":
    main()
