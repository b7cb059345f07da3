"""The hardened dashboard in a real browser: `python -m dashboard` (the launcher's and compose's command) with
ACCESS_TOKEN set, the real worker API (which refuses writes without the token), a real redis-server and
headless chromium.

One Streamlit for the module: the login gate, a generic OHLC upload imported for real, a hostile symbol column
shown as text and neutralised in the pair-analytics download, and a System page with a non-UTF-8 dead letter.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qs_common import keys
from tests.integration.browser_util import (
    Chromium,
    WorkerApi,
    api_and_dashboard,
    kline_candles,
    seed_live,
    start_redis,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "correct horse battery staple"
EVIL = "[x](http://evil.example)"
HYPERLINK = '=HYPERLINK("http://evil.example","x")'
EXCEPTIONS = "document.querySelectorAll('[data-testid=\"stException\"]').length"
# every link to the hostile host, with the test id of the element it sits in (to say where it came from)
EVIL_LINKS = """Array.from(document.querySelectorAll('a')).filter(a => (a.hostname || '').includes('evil')).map(
  a => (a.closest('[data-testid]') || a).getAttribute('data-testid') + ': ' + a.outerHTML.slice(0, 200))"""
# the page's text, without the invisible word joiners the dashboard puts into bare URLs (dashboard/safe.py)
BODY = "document.body.innerText.replaceAll('\\u2060', '')"


class Site:
    def __init__(self, url: str, api: WorkerApi, redis_url: str, tmp: Path) -> None:
        self.url, self.api, self.redis_url, self.tmp = url, api, redis_url, tmp


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    tmp = Path(tempfile.mkdtemp(prefix="qs-hardening-"))
    candles = kline_candles()
    for redis_url in start_redis():
        env = {"ACCESS_TOKEN": TOKEN}
        with api_and_dashboard(candles, redis_url, env, env, "qs-hardening-ui-") as (api, url):
            seed_live(redis.Redis.from_url(redis_url, decode_responses=True), candles)  # read on page loads only
            yield Site(url, api, redis_url, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def _sign_in(b: Chromium, url: str, token: str = TOKEN) -> None:
    b.navigate(url)
    b.wait_for("!!document.querySelector('input[type=\"password\"]')")
    b.type_into("input[type='password']", token)
    b.click_button("Sign in")


def _signed_in(b: Chromium, url: str) -> None:
    _sign_in(b, url)
    b.wait_for("document.querySelector('[data-testid=\"stSidebar\"]') !== null")
    b.wait_for("document.querySelector('h1') !== null")


def test_login_gate_refuses_a_wrong_token_and_admits_the_right_one(site: Site, browser: Chromium) -> None:
    _sign_in(browser, site.url, "not the token")
    text = browser.wait_for(f"{BODY}.includes('That is not the access token') && {BODY}")
    assert "BTCUSDT" not in text  # nothing of the app behind the gate
    assert browser.evaluate("document.querySelector('[data-testid=\"stSidebar\"]')") is None
    _signed_in(browser, site.url)
    browser.wait_for(f"{BODY}.includes('BTCUSDT last')")
    assert browser.evaluate(EXCEPTIONS) == 0
    # no Deploy button or developer menu for visitors (client.toolbarMode = minimal)
    assert "Deploy" not in browser.evaluate(BODY)
    browser.screenshot(ARTIFACTS / "hardening_signed_in.png")


def test_generic_ohlc_file_imports_through_the_token_protected_api(site: Site, browser: Chromium) -> None:
    generic = site.tmp / "GENERIC.csv"
    rows = [f"{1723154400 + 60 * i},{100 + i},{102 + i},{99 + i},{101 + i},{i + 0.5}" for i in range(5)]
    generic.write_text("time,open,high,low,close,volume\n" + "\n".join(rows) + "\n")  # epoch seconds
    _signed_in(browser, f"{site.url}/upload")
    browser.wait_for("!!document.querySelector('input[type=\"file\"]')")
    browser.set_files("input[type='file']", [generic])
    browser.wait_for(f"{BODY}.includes('5 rows')")
    browser.click_button("Import")
    text = browser.wait_for(f"(() => {{ const t = {BODY}; return (t.includes('Imported') || "
                            "t.includes('refused')) && t })()")
    assert "Imported 5 1m candles of GENERIC" in text, text[:2000]
    stored = site.api.candles("GENERIC", 0, 2**62)
    assert [c["open_time"] for c in stored] == [1723154400000 + 60_000 * i for i in range(5)]  # seconds as seconds
    assert stored[0]["quote_volume"] is None and stored[0]["volume"] == "0.50000000"
    assert browser.evaluate(EXCEPTIONS) == 0


def test_hostile_symbols_render_as_text_and_downloads_are_neutralised(site: Site, browser: Chromium) -> None:
    hostile = site.tmp / "pair.csv"
    lines = ["symbol,time,open,high,low,close,volume"]
    for sym, base in ((EVIL, 100.0), (HYPERLINK, 50.0)):
        for i in range(80):
            px = base + (i % 7) * 0.5 + (base / 100) * i * 0.01
            lines.append(f'"{sym.replace(chr(34), chr(34) * 2)}",{1723154400 + 60 * i},{px},{px + 1},{px - 1},{px},1')
    hostile.write_text("\n".join(lines) + "\n")
    downloads = site.tmp / "downloads"
    downloads.mkdir(exist_ok=True)
    browser.allow_downloads(downloads)
    _signed_in(browser, f"{site.url}/upload")
    browser.wait_for("!!document.querySelector('input[type=\"file\"]')")
    browser.set_files("input[type='file']", [hostile])
    text = browser.wait_for(f"{BODY}.includes('Download pair analytics') && {BODY}", 90)
    assert EVIL.upper() in text  # the symbol is shown, as the text it is
    assert browser.evaluate(EVIL_LINKS) == []  # and nothing in the page links to it
    assert browser.evaluate(EXCEPTIONS) == 0
    browser.screenshot(ARTIFACTS / "hardening_hostile_upload.png")
    browser.click_button("Download pair analytics")
    deadline = time.monotonic() + 30
    while not [f for f in downloads.glob("*.csv")] and time.monotonic() < deadline:
        time.sleep(0.2)
    (saved,) = list(downloads.glob("*.csv"))
    header, *body = list(csv.reader(saved.open()))
    assert "'" + HYPERLINK.upper() in header and EVIL.upper() in header
    assert not any(cell.startswith(("=", "+", "@")) for cell in header)
    for row in body:
        for cell in row:
            # a cell starting with '-' is a plain number (a negative z-score), never a formula
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), row
            assert not cell.startswith("-") or float(cell) < 0, row


def test_system_page_with_a_non_utf8_dead_letter(site: Site, browser: Chromium) -> None:
    r = redis.Redis.from_url(site.redis_url)
    r.xadd(keys.DEAD_LETTER_STREAM, {"reason": "poison", "raw": b'{"p":"\xff\xfe\x80"}', "recv": "1",
                                     "source": "worker-candles"})
    status = json.loads(r.get(keys.status_key("ingest")) or b"{}")
    status |= {"updated_ms": int(time.time() * 1000), "dead_letters": 1,
               "dead_letter_reasons": {EVIL: 1}, "redis_rewinds": 0}
    r.set(keys.status_key("ingest"), json.dumps(status), ex=120)
    _signed_in(browser, f"{site.url}/system")
    # the metrics load lazily: wait for the last of them, not only the headings
    text = browser.wait_for(f"{BODY}.includes('Dead letters (1 held)') && {BODY}.includes('Repaired from REST') "
                            f"&& {BODY}", 90)
    time.sleep(1)  # let the tables draw for the screenshot
    assert "Robustness" in text and "Kline mismatches" in text
    assert browser.evaluate(EXCEPTIONS) == 0
    assert "UnicodeDecodeError" not in text
    assert browser.evaluate(EVIL_LINKS) == []
    browser.screenshot(ARTIFACTS / "hardening_system.png")
