"""Synthetic-but-realistic 1m candles of several symbols for the research tests (deterministic).

BTCUSDT is the official 1m klines of 2024-08-08 (tests/fixtures); ETHUSDT follows it (y = 0.0432·x + an
AR(1) deviation with a half-life of ~7 minutes: a cointegrated pair); SOLUSDT and BNBUSDT are independent
geometric random walks (no cointegration with anything). Volumes are plausible, prices have 2 decimals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KLINES = Path(__file__).resolve().parent / "fixtures" / "BTCUSDT-1m-2024-08-08.csv"
HEADER = "open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def closes(n: int = 1440, seed: int = 9) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    a = np.loadtxt(KLINES, delimiter=",", usecols=(0, 4))[:n]
    t = a[:, 0].astype(np.int64)
    btc = a[:, 1]
    rng = np.random.default_rng(seed)
    dev = np.zeros(n)
    for i in range(1, n):  # AR(1), φ = 0.9: half-life ln 2 / −ln 0.9 ≈ 6.6 minutes
        dev[i] = 0.9 * dev[i - 1] + rng.normal(0, 1.5)
    eth = 0.0432 * btc + 30.0 + dev
    sol = 150.0 * np.exp(np.cumsum(rng.normal(0, 0.0012, n)))
    bnb = 520.0 * np.exp(np.cumsum(rng.normal(0, 0.0009, n)))
    return t, {"BTCUSDT": btc, "ETHUSDT": eth, "SOLUSDT": sol, "BNBUSDT": bnb}


def candles_csv(symbol: str, n: int = 1440, seed: int = 9) -> str:
    """A CSV body for `POST /candles/import?symbol=...&interval=1m`."""
    t, cs = closes(n, seed)
    c = cs[symbol]
    rng = np.random.default_rng(SYMBOLS.index(symbol) + 1)
    lines = [HEADER]
    prev = c[0]
    for i in range(n):
        o, cl = prev, c[i]
        wig = abs(rng.normal(0, 0.0004)) * cl
        hi, lo = max(o, cl) + wig, min(o, cl) - wig
        vol = 5.0 + abs(rng.normal(0, 3.0))
        lines.append(f"{t[i]},{o:.2f},{hi:.2f},{lo:.2f},{cl:.2f},{vol:.4f},{vol * cl:.4f},"
                     f"{int(20 + vol * 10)},{vol / 2:.4f}")  # fmt: skip
        prev = cl
    return "\n".join(lines) + "\n"



def candle_rows(symbol: str, n: int = 1440, seed: int = 9) -> list[dict[str, str]]:
    """The same candles as dicts (tests.integration.browser_util.WorkerApi's seed format)."""
    lines = candles_csv(symbol, n, seed).splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, line.split(","), strict=True)) for line in lines[1:]]
