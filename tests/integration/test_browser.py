"""The whole pipeline in a real browser: redis-server, worker, ingest replaying the recorded fixtures,
`streamlit run dashboard/app.py`, and headless chromium over the DevTools protocol.

Screenshots of every page land in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.browser_util import Chromium, free_port, start_redis, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "tests" / "artifacts"
INGEST_TIMEOUT_S = 400
PAGES = ("", "markets", "adf", "history", "upload", "alerts", "system")

# Counts Plotly traces' points on the page: Plotly keeps the figure on its graph div as `.data`.
PLOT_POINTS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  p => (p.data || []).reduce((n, t) => n + ((t.x || t.z || t.open || []).length || 0), 0))"""
EXCEPTIONS = "document.querySelectorAll('[data-testid=\"stException\"]').length"
IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]') && document.readyState === 'complete'"


def _spawn(procs: list[subprocess.Popen[bytes]], log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


@pytest.fixture(scope="module")
def dashboard_url() -> Iterator[str]:
    tmp = Path(tempfile.mkdtemp(prefix="qs-browser-"))
    redis_server = start_redis()
    redis_url = next(redis_server)
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp),
        "API_PORT": str(api_port),
        "API_URL": f"http://127.0.0.1:{api_port}",
        "SYMBOLS": "BTCUSDT,ETHUSDT",
        "PAIRS": "ETHUSDT/BTCUSDT",
        "LOG_LEVEL": "WARNING",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        worker = _spawn(procs, tmp / "worker.log", env, "-m", "worker")
        app = str(ROOT / "dashboard" / "app.py")
        ui = _spawn(
            procs,
            tmp / "streamlit.log",
            env,
            "-m",
            "streamlit",
            "run",
            app,
            "--server.headless",
            "true",
            "--server.port",
            str(ui_port),
            "--browser.gatherUsageStats",
            "false",
        )
        replay = [
            a for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz") for a in ("--replay-file", str(FIXTURES / f))
        ]
        # the dashboard loads (on the other core) while the worker does; ingest starts once the worker is up
        wait_http(f"http://127.0.0.1:{api_port}/health", worker)
        ingest = _spawn(procs, tmp / "ingest.log", env, "-m", "ingest", "--source", "replay", "--speed", "0", *replay)
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health", ui)
        # the replay paces itself on the consumers; on a loaded 2-core machine it takes a minute or two
        assert ingest.wait(INGEST_TIMEOUT_S) == 0, (tmp / "ingest.log").read_text()[-2000:]
        r = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while r.xlen("stream:analytics") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        redis_server.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _settle(b: Chromium, url: str) -> None:
    b.navigate(url)
    b.wait_for("document.querySelector('[data-testid=\"stSidebar\"]') !== null", 60)
    b.wait_for("document.querySelector('h1') !== null", 60)
    time.sleep(1.5)  # let fragments and charts draw


def test_live_pair_shows_the_replayed_market(dashboard_url: str, browser: Chromium) -> None:
    _settle(browser, dashboard_url)
    points = browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 2 && p[0] > 0 ? p : null }})()")
    assert points[0] > 0 and points[1] > 0  # both legs' candles
    body = browser.wait_for("document.body.innerText.includes('ETHUSDT last') && document.body.innerText")
    # the replay ends 2024-08-08 23:59:59 UTC: the newest data shown is that, not wall-clock "now"
    assert "BTCUSDT last" in body and "ETHUSDT bid" in body
    assert "top of book as of 2024-08-08 23:59:59 UTC" in body
    assert browser.evaluate(EXCEPTIONS) == 0
    browser.screenshot(ARTIFACTS / "live_pair.png")


def test_one_second_candles_switch_the_pair_analytics_on(dashboard_url: str, browser: Chromium) -> None:
    """The replay holds ~6 minutes: too few 1m candles for a 60-point window, enough 1s candles."""
    _settle(browser, dashboard_url)
    one_second = (
        'Array.from(document.querySelectorAll(\'[data-testid="stSidebar"] button[role="radio"]\'))'
        ".find(b => b.textContent.trim() === '1s')"
    )
    browser.wait_for(f"!!{one_second}")
    browser.evaluate(f"{one_second}.click()")
    browser.wait_for("document.querySelector('h1') && document.querySelector('h1').innerText.includes('1s')")
    points = browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 6 ? p : null }})()", 90)
    assert all(n > 0 for n in points)  # candles x2, prices and fair value, spread and z, hedge ratio, correlation
    assert browser.evaluate(EXCEPTIONS) == 0
    time.sleep(1)
    browser.screenshot(ARTIFACTS / "live_pair_1s.png")


@pytest.mark.parametrize("page", PAGES[1:])
def test_every_page_renders_without_an_exception(dashboard_url: str, browser: Chromium, page: str) -> None:
    _settle(browser, f"{dashboard_url}/{page}")
    if page == "markets":
        browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 1 && p[0] > 0 }})()")
        assert "BTCUSDT" in browser.evaluate("document.body.innerText")
    if page == "history":
        browser.wait_for(f"(() => {{ const p = {PLOT_POINTS}; return p.length >= 1 && p[0] > 0 }})()")
    if page == "system":
        # the page draws section by section: wait for the last one it must show (it failed on 'Consumers' alone,
        # read while 'Backfill' was still to come), then check the whole
        text = browser.wait_for("(() => { const t = document.body.innerText; return t.includes('Consumers') && "
                                "t.includes('Backfill') && (t.includes('The feed is down') || t.includes('Feed done'))"
                                " && t })()")
        # the replay has finished, so ingest's status record has expired: the page must say so plainly
        assert "Backfill" in text and ("The feed is down" in text or "Feed done" in text)
    assert browser.evaluate(EXCEPTIONS) == 0, browser.evaluate("document.body.innerText")[:2000]
    browser.screenshot(ARTIFACTS / f"{page}.png")


def test_adf_button_in_the_browser(dashboard_url: str, browser: Chromium) -> None:
    _settle(browser, f"{dashboard_url}/adf")
    find = "Array.from(document.querySelectorAll('button')).find(b => b.innerText.includes('Run ADF now'))"
    browser.wait_for(f"!!{find}")  # on a busy machine the page may still be drawing
    browser.evaluate(f"{find}.click()")
    text = browser.wait_for(
        "(() => { const t = document.body.innerText; "
        "return (t.includes('ADF statistic') || t.includes('Not enough data')) && t })()"
    )
    assert "Not enough data" in text or "ADF statistic" in text
    assert browser.evaluate(EXCEPTIONS) == 0
    browser.screenshot(ARTIFACTS / "adf_run.png")
