"""Write the synthetic past through the worker's import path (`POST /candles/import`), so charts show at once.

Why candles and not ticks: 24 h at the feed's realistic ~17 trades/s per symbol are ~3 million trades for two
symbols; the worker digests about 17,000 ticks/s (docs/benchmarks.md), so pushing them as ticks would take
minutes, fill the trade de-duplication table and hold the live feed behind them. Candles drawn from the same
model go through the same validation and store as any user import (source `import`, never overwriting a
stored candle), in seconds.

Runs beside the live feed: the worker may start after ingest (compose starts them together), so a refused
connection or a 5xx is retried for `WAIT_S`; a 4xx is reported and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from ingest.sources.synthetic_model import History

log = logging.getLogger("ingest.synthetic")

WAIT_S = 180.0
# 1m first: the dashboard opens on 1m, so those charts fill first; 1s (the big one) last
ORDER = ("1m", "5m", "1s")


async def _post(client: httpx.AsyncClient, symbol: str, interval: str, body: bytes) -> dict[str, object] | None:
    """One import, retried while the worker is not there yet; None when it cannot be done."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            resp = await client.post("/candles/import", params={"symbol": symbol, "interval": interval},
                                     content=body, headers={"content-type": "text/csv"})
            if resp.status_code < 500:
                if resp.status_code != 200:
                    log.error("synthetic history %s %s refused by the worker (%d): %s",
                              symbol, interval, resp.status_code, resp.text[:300])
                    return None
                answer: dict[str, object] = resp.json()
                return answer
            problem = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            log.warning("synthetic history not written: no worker API answered at %s for %.0f s (%s)",
                        client.base_url, WAIT_S, problem)
            return None
        await asyncio.sleep(1.0)


async def write_history(hist: History, api_url: str, token: str) -> bool:
    """Import every candle of `hist`; True when the worker took them all (imported or already stored)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    counts: dict[str, list[int]] = {}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120.0) as client:
        for interval in ORDER:
            for symbol, frame in hist.candles[interval].items():
                answer = await _post(client, symbol, interval, frame.write_csv().encode())
                if answer is None:
                    return False
                got = counts.setdefault(interval, [0, 0])
                got[0] += int(str(answer["imported"]))
                got[1] += int(str(answer["skipped"]))
    log.info("synthetic history written in %.1f s: %s (imported/already stored)", time.monotonic() - started,
             ", ".join(f"{iv} {a}/{b}" for iv, (a, b) in counts.items()))
    return True
