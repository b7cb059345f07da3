"""The demo's first run: the synthetic feed's 24 h past reaches the worker's stored candles, then live goes on."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import python_module, service_env
from tests.integration.procs import Proc, WorkerProc, wait_for

pytestmark = pytest.mark.integration


def _counts(api: str) -> dict[tuple[str, str], dict[str, int]]:
    rows = httpx.get(f"{api}/symbols", timeout=10).json()["symbols"]
    return {(r["symbol"], r["interval"]): r for r in rows}


def test_the_synthetic_past_reaches_the_stored_1s_and_1m_candles_within_a_minute(tmp_path, redis_server):
    worker = WorkerProc(redis_server.url, tmp_path / "data", tmp_path / "worker.log")
    ingest = Proc(python_module("ingest", "--source", "synthetic"),
                  service_env(redis_server.url, API_URL=worker.api, SYNTHETIC_HISTORY_H="24"), tmp_path / "ingest.log")

    def imported() -> bool:
        assert ingest.p.poll() is None, ingest.log()
        assert "not written" not in ingest.log() and "refused" not in ingest.log(), ingest.log()
        return "synthetic history written" in ingest.log()

    # the bound for the whole first run: worker start, drawing the day and importing it
    wait_for(imported, 60, "the synthetic history in the worker")
    counts = _counts(worker.api)
    for sym in ("BTCUSDT", "ETHUSDT"):
        # a day of history, plus the live candles of the minutes since
        assert counts[(sym, "1m")]["count"] >= 1_440
        assert counts[(sym, "1s")]["count"] >= 86_400
        assert counts[(sym, "5m")]["count"] >= 287
        day_ago = counts[(sym, "1m")]["last_open_time"] - 86_400_000
        assert counts[(sym, "1m")]["first_open_time"] <= day_ago

    # the live feed continues the history's prices: the newest imported and the first live 1m candle are close
    def live_candle() -> bool:
        csv = worker.candles_csv("BTCUSDT", "1m", limit="3").strip().splitlines()[1:]
        return any(line.endswith(",live") for line in csv)

    wait_for(live_candle, 60, "a live 1m candle")
    rows = [line.split(",") for line in worker.candles_csv("BTCUSDT", "1m", limit="5").strip().splitlines()[1:]]
    last_import = [r for r in rows if r[-1] == "import"][-1]
    first_live = [r for r in rows if r[-1] == "live"][0]
    assert abs(float(first_live[1]) / float(last_import[4]) - 1) < 0.005, (last_import, first_live)

    assert ingest.stop() == 0
    assert worker.stop() == 0
    assert "Traceback" not in ingest.log() + worker.log()
