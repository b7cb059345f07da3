"""The Research and Backtest pages in a real browser: `python -m dashboard`, the real worker API over a DuckDB
file with four symbols' 1m candles (BTCUSDT's are the official klines of 2024-08-08), a real redis-server and
headless chromium. A scan is run from the page, its best pair sent to the Backtest page and backtested there.

Screenshots land in tests/artifacts/research*.png and backtest*.png (gitignored).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.browser_util import Chromium, api_and_dashboard, seed_live, start_redis
from tests.research_candles import SYMBOLS, candle_rows

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
EXCEPTIONS = "document.querySelectorAll('[data-testid=\"stException\"]').length"
BODY = "(document.body ? document.body.innerText : '').replaceAll('\\u2060', '')"
PLOT_POINTS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  p => (p.data || []).reduce((n, t) => n + ((t.x || t.z || []).length || 0), 0))"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    candles = {s: candle_rows(s) for s in SYMBOLS}
    for redis_url in start_redis():
        with api_and_dashboard(candles, redis_url, {"SCAN_EVERY_S": "0", "GARCH_EVERY_S": "0"}, {},
                               "qs-research-") as (_, url):  # fmt: skip
            seed_live(redis.Redis.from_url(redis_url, decode_responses=True),
                      {"BTCUSDT": candles["BTCUSDT"], "ETHUSDT": candles["ETHUSDT"]})  # fmt: skip
            yield url


def _body_has(b: Chromium, *needles: str, timeout: float = 90) -> str:
    cond = " && ".join(f"t.includes({n!r})" for n in needles)
    return str(b.wait_for(f"(() => {{ const t = {BODY}; return ({cond}) && t }})()", timeout))


def test_scan_then_backtest_in_the_browser(site: str, browser: Chromium) -> None:
    browser.navigate(f"{site}/research")
    _body_has(browser, "Pair research", "No scan has finished yet")
    browser.click_button("Run scan now")
    body = _body_has(browser, "pairs pass the filters", "Hurst exponent (spread)", "Lead-lag")
    assert "1 of 6 pairs pass the filters" in body
    assert "ETHUSDT/BTCUSDT" in body or "BTCUSDT/ETHUSDT" in body
    browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 2 && p.every(n => n > 0) }})()")
    assert browser.evaluate(EXCEPTIONS) == 0
    time.sleep(1.0)  # let the charts finish drawing
    browser.screenshot(ARTIFACTS / "research.png")

    browser.click_button("Backtest this pair")
    _body_has(browser, "Backtest · z-score pair strategy", "From scan")
    browser.click_button("Run backtest")
    # wait for every part: the sweep heatmap (with its "in-sample best" mark) draws after the text above it
    body = _body_has(browser, "Periods per year", "Walk-forward", "Parameter sweep (in-sample)", "525,960",
                     "in-sample best", timeout=120)
    assert "525,960" in body and "in-sample best" in body
    browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 2 && p.every(n => n > 0) }})()")
    assert browser.evaluate(EXCEPTIONS) == 0
    time.sleep(1.0)
    browser.screenshot(ARTIFACTS / "backtest.png")
