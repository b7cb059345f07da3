"""Tick-entry decode speed: `qs_common.codec.decode_batch` as the candle and analytics consumers call it.

Prints entries/s and CPU µs an entry over the recorded frames (BTCUSDT and ETHUSDT, 2024-08-08) encoded as
ingest writes them, as dicts (redis-py's parse) and as the flat lists of raw replies (the consumers' reading,
`GroupConsumer(flat_fields=True)`), best of `--rounds`. Asserts nothing.
Run from the repository root: `python bench/bench_codec.py [--before <commit>]`; `--before` also times that
commit's `qs_common/codec.py` (loaded from git beside this tree's, alternated in the same rounds).
For reference it also times the hand-written loop the candle consumer had before issue 13 (kept here only as
the baseline the codec must match).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load, recorded_frames  # noqa: E402
from ingest.parser import parse_frame  # noqa: E402
from qs_common import codec  # noqa: E402

Entries = list[tuple[bytes, Any]]


def entries() -> Entries:
    out: Entries = []
    for i, frame in enumerate(recorded_frames()):
        tick = parse_frame(0, frame)
        fields = codec.encode(tick)  # type: ignore[arg-type]
        out.append((f"{i}-0".encode(), {k.encode(): str(v).encode() for k, v in fields.items()}))
    return out


def flat(batch: Entries) -> Entries:
    """The entries as a raw XREADGROUP reply gives them: [name, value, ...] in the encoder's order."""
    return [(eid, [x for pair in f.items() for x in pair]) for eid, f in batch]


def codec_at(commit: str) -> Any:
    """`qs_common/codec.py` as of `commit`, as a module of its own (it imports only this tree's other modules)."""
    root = Path(__file__).resolve().parent.parent
    text = subprocess.run(["git", "show", f"{commit}:qs_common/codec.py"], cwd=root, check=True,
                          capture_output=True).stdout
    path = Path(tempfile.mkdtemp()) / "codec_before.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location("codec_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["codec_before"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def hand_loop_before(batch: Entries) -> Any:
    """The candle consumer's own decoding as of issue 8 (the baseline)."""
    rejected, entry_ids, symbols, ids, prices, qtys, times, makers = [], [], [], [], [], [], [], []
    for entry_id, f in batch:
        kind = f.get(b"kind")
        if kind != b"trade":
            if kind != b"book":
                rejected.append((entry_id, f"not a tick: kind {kind!r}"))
            continue
        try:
            sym, trade_id, ts = f[b"sym"].decode(), int(f[b"id"]), int(f[b"ts"])
            price, qty, maker = f[b"p"].decode(), f[b"q"].decode(), f[b"m"] == b"1"
        except (KeyError, ValueError) as exc:
            rejected.append((entry_id, f"malformed trade entry: {exc!r}"))
            continue
        entry_ids.append(entry_id)
        symbols.append(sym)
        ids.append(trade_id)
        prices.append(price)
        qtys.append(qty)
        times.append(ts)
        makers.append(maker)
    return ids


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--before", help="a commit whose codec is timed too (analytics reading)")
    args = p.parse_args()
    batch = entries()
    trades = sum(1 for _, f in batch if f[b"kind"] == b"trade")
    print(f"{len(batch):,} entries ({trades:,} trades, {len(batch) - trades:,} book tickers)")
    flat_batch = flat(batch)
    cases: list[tuple[str, Entries, Callable[[Entries], Any]]] = [
        ("before: candle consumer's hand loop", batch, hand_loop_before),
        ("decode_batch(books=False) [candles], dicts", batch, lambda b: codec.decode_batch(b, books=False)),
        ("decode_batch(books=False) [candles], flat", flat_batch, lambda b: codec.decode_batch(b, books=False)),
        ("decode_batch(order=True, times=True) [analytics], dicts", batch,
         lambda b: codec.decode_batch(b, order=True, times=True)),
        ("decode_batch(order=True, times=True) [analytics], flat", flat_batch,
         lambda b: codec.decode_batch(b, order=True, times=True)),
    ]
    if args.before:
        old = codec_at(args.before)
        cases += [
            (f"  {args.before[:10]}: [analytics], dicts", batch, lambda b: old.decode_batch(b, order=True, times=True)),
            (f"  {args.before[:10]}: [analytics], flat", flat_batch,
             lambda b: old.decode_batch(b, order=True, times=True)),
        ]
    best = {name: (float("inf"), float("inf")) for name, _, _ in cases}
    for _ in range(args.rounds):  # interleaved, best of: the machine is shared
        for name, data, fn in cases:
            c0, t0 = time.process_time(), time.perf_counter()
            fn(data)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    n = len(batch)
    for name, (cpu, wall) in best.items():
        print(f"{name:58s} {n / wall:>12,.0f} entries/s {cpu / n * 1e6:6.3f} µs CPU an entry")
    print(f"load {load()}")


if __name__ == "__main__":
    main()
