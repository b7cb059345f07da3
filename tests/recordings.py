"""Readers for the recorded fixtures, written independently of the product code (they are the oracle)."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any


def frames(path: Path) -> list[tuple[int, bytes]]:
    out = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ns, _, raw = line.rstrip(b"\n").partition(b" ")
            out.append((int(ns), raw))
    return out


def trade_frames(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(receive ns, `data`) of every `@trade` frame of a recording; other frames are not parsed (speed)."""
    out = []
    for ns, raw in frames(path):
        if b"@trade" not in raw[:40]:
            continue
        doc = json.loads(raw)
        if doc.get("stream", "").endswith("@trade"):
            out.append((ns, doc["data"]))
    return out


def trades(path: Path) -> list[dict[str, Any]]:
    return [d for _, d in trade_frames(path)]


def official_klines(path: Path) -> dict[int, dict[str, Any]]:
    """Binance's daily kline CSV (no header, 12 columns) keyed by open time in ms."""
    out = {}
    with path.open() as fh:
        for row in csv.reader(fh):
            open_time = int(row[0])
            out[open_time] = {
                "open_time": open_time, "open": row[1], "high": row[2], "low": row[3], "close": row[4],
                "volume": row[5], "close_time": int(row[6]), "quote_volume": row[7], "trades": int(row[8]),
                "taker_buy_volume": row[9], "taker_buy_quote_volume": row[10],
            }
    return out


def reference_candles(trade_list: list[dict[str, Any]], interval_ms: int) -> dict[int, dict[str, Any]]:
    """Candles by plain Python Decimal arithmetic, trade by trade, in trade-id order."""
    out: dict[int, dict[str, Any]] = {}
    for t in sorted(trade_list, key=lambda d: d["t"]):
        p, q = Decimal(t["p"]), Decimal(t["q"])
        key = t["T"] - t["T"] % interval_ms
        c = out.get(key)
        if c is None:
            c = out[key] = {"open": p, "high": p, "low": p, "close": p, "volume": Decimal(0),
                            "quote_volume": Decimal(0), "trades": 0, "taker_buy_volume": Decimal(0)}
        c["high"], c["low"], c["close"] = max(c["high"], p), min(c["low"], p), p
        c["volume"] += q
        c["quote_volume"] += p * q
        c["trades"] += 1
        if not t["m"]:
            c["taker_buy_volume"] += q
    return out


def full_minutes(trade_list: list[dict[str, Any]]) -> list[int]:
    """Open times of the minutes wholly inside the recording."""
    first, last = min(t["T"] for t in trade_list), max(t["T"] for t in trade_list)
    start = first - first % 60_000 + 60_000
    return list(range(start, last - last % 60_000, 60_000))
