"""Real price series for the research tests, built from the recorded fixtures (see tests/fixtures/SOURCE.md)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from tests.recordings import trades as recorded_trades

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _last_trade_per_second(name: str) -> dict[int, float]:
    """Close of each second (last `@trade` price by trade time) of one recorded symbol."""
    out: dict[int, tuple[int, float]] = {}
    for d in recorded_trades(FIXTURES / name):
        t = int(d["T"])
        sec = t // 1000 * 1000
        prev = out.get(sec)
        if prev is None or t >= prev[0]:
            out[sec] = (t, float(d["p"]))
    return {k: v[1] for k, v in out.items()}


@cache
def eth_btc_1s() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time ms, x = BTCUSDT close, y = ETHUSDT close) every second of the recording, carried forward
    over seconds without a trade (after both legs have traded once)."""
    btc = _last_trade_per_second("btcusdt_20240808.gz")
    eth = _last_trade_per_second("ethusdt_20240808.gz")
    start = max(min(btc), min(eth))
    end = min(max(btc), max(eth))
    ts, xs, ys = [], [], []
    bx = btc[max(k for k in btc if k <= start)]
    ey = eth[max(k for k in eth if k <= start)]
    for s in range(start, end + 1, 1000):
        bx = btc.get(s, bx)
        ey = eth.get(s, ey)
        ts.append(s)
        xs.append(bx)
        ys.append(ey)
    return np.array(ts, dtype=np.int64), np.array(xs), np.array(ys)


@cache
def btc_1m() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(open time ms, close, quote volume) of the official BTCUSDT 1m klines of 2024-08-08 (1,440 rows)."""
    a = np.loadtxt(FIXTURES / "BTCUSDT-1m-2024-08-08.csv", delimiter=",", usecols=(0, 4, 7))
    return a[:, 0].astype(np.int64), a[:, 1], a[:, 2]
