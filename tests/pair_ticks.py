"""Recorded ticks for the analytics runtime tests, and their reference: a fresh PairEngine fed the pair's
observations, aligned by a plain loop over the raw frames (not the product's aligner or tick decoding)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from qs_analytics.engine import PairConfig, PairEngine
from qs_common import codec
from qs_common.models import BookTicker, Trade
from tests.conftest import BTC_RECORDING, ETH_RECORDING
from tests.recordings import frames


@dataclass(frozen=True)
class RawTick:
    """One recorded tick as the venue sent it, plus the stream fields the ingest writes for it."""

    kind: str  # trade | book
    sym: str
    ts: int  # trade time, or the receive time's ms for a book ticker (spot sends no event time)
    price: float  # trade price, or book mid
    recv_ns: int
    fields: dict[str, str | int]


def recorded_ticks(n: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> list[RawTick]:
    """The first `n` trade and book-ticker ticks of both recordings, in receive order (each recv made unique)."""
    merged = sorted(itertools.chain(frames(BTC_RECORDING), frames(ETH_RECORDING)), key=lambda f: f[0])
    out: list[RawTick] = []
    for i, (ns, raw) in enumerate(merged):
        if b"@trade" not in raw[:40] and b"@bookTicker" not in raw[:40]:
            continue
        d = json.loads(raw)["data"]
        if d["s"] not in symbols:
            continue
        recv = ns + i  # unique: a tick is found again by its recv_ns
        if "p" in d:
            t = Trade(symbol=d["s"], trade_id=d["t"], price=d["p"], qty=d["q"], ts_trade_ms=d["T"],
                      ts_event_ms=d["E"], recv_ns=recv, buyer_is_maker=d["m"])
            out.append(RawTick("trade", d["s"], d["T"], float(d["p"]), recv, codec.encode(t)))
        else:
            b = BookTicker(symbol=d["s"], update_id=d["u"], bid=d["b"], bid_qty=d["B"], ask=d["a"], ask_qty=d["A"],
                           ts_event_ms=None, recv_ns=recv)
            mid = (float(d["b"]) + float(d["a"])) / 2
            out.append(RawTick("book", d["s"], recv // 1_000_000, mid, recv, codec.encode(b)))
        if len(out) == n:
            break
    return out


def observations(ticks: list[RawTick], y: str, x: str, mid: bool) -> list[tuple[int, float, float, int]]:
    """(ts, y, x, recv_ns) per update of either leg once both are known: the as-of alignment, written plainly."""
    kind = "book" if mid else "trade"
    last: dict[str, float] = {}
    out = []
    for t in ticks:
        if t.kind != kind or t.sym not in (y, x):
            continue
        last[t.sym] = t.price
        if y in last and x in last:
            out.append((t.ts, last[y], last[x], t.recv_ns))
    return out


def reference_engine(config: PairConfig, obs: list[tuple[int, float, float, int]],
                     warmed: int = 0) -> tuple[PairEngine, list[dict[str, float]]]:
    """A fresh engine fed `obs`: the first `warmed` as a warm-up replays them (no ADF, then one if due), the rest
    as the live loop does (the ADF whenever due). Returns the engine and the metrics after each observation."""
    engine = PairEngine(config)
    out = []
    for i, (ts, yv, xv, _) in enumerate(obs):
        m = engine.update(ts, yv, xv)
        live = i >= warmed
        if (live or i == warmed - 1) and engine.adf_due(ts):
            engine.run_adf(ts)
            m = {**m, **adf_metrics(engine)}
        out.append(m)
    return engine, out


def adf_metrics(engine: PairEngine) -> dict[str, float]:
    res = engine.last_adf
    if res is None or not res.ran:
        return {}
    return {"adf_stat": res.statistic, "adf_pvalue": res.p_value, "adf_lags": float(res.lags_used)}
