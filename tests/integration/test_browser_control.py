"""The screen drives the live system (issue 10), in a real browser: redis-server, the worker (every role), ingest
on the synthetic feed (wall-clock ticks, so the engines keep computing), `python -m dashboard` and headless
chromium. From the sidebar a user adds a pair, then changes its window; the engine's own numbers (labelled with
the settings each analytics entry says it was computed with) follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis

from qs_common import control
from tests.conftest import python_module, service_env
from tests.integration.browser_util import Chromium, dashboard_server, start_redis
from tests.integration.procs import Proc, WorkerProc

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
SIDEBAR = '[data-testid="stSidebar"]'
STACK = {"SOURCE": "synthetic", "SYMBOLS": "BTCUSDT,ETHUSDT,SOLUSDT", "PAIRS": "ETHUSDT/BTCUSDT",
         "SYNTHETIC_RATE": "10", "SYNTHETIC_HISTORY_H": "0", "DEPTH": "false", "OLS_WINDOW": "40",
         "SCAN_EVERY_S": "0", "GARCH_EVERY_S": "0", "LOG_LEVEL": "WARNING"}  # fmt: skip
BODY = "document.body.innerText"


def js(value: object) -> str:
    return json.dumps(value)


def click(b: Chromium, element_js: str) -> None:
    b.wait_for(f"!!({element_js})")
    b.evaluate(f"({element_js}).click()")


def key(b: Chromium, name: str, code: int) -> None:
    for kind in ("keyDown", "keyUp"):
        b.call("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code,
               nativeVirtualKeyCode=code)  # fmt: skip


def choose(b: Chromium, label: str, option: str) -> None:
    """Pick `option` in the sidebar selectbox labelled `label` as a user does: click the box (a real mouse event,
    which opens its list), type to filter, arrow down to the option, Enter. The click is repeated while the list
    has not opened (a rerun may replace the widget under the first click)."""
    field = f"document.querySelector('{SIDEBAR} input[aria-label=\"{label}\"]')"
    has_option = (f"Array.from(document.querySelectorAll('[role=\"option\"]')).some(o => o.innerText.trim() === "
                  f"{js(option)})")  # fmt: skip
    for attempt in range(6):
        b.wait_for(f"!!{field}")
        b.evaluate(f"{field}.scrollIntoView({{block: 'center'}})")
        x, y = b.evaluate(f"(() => {{ const f = {field}; const r = (f.closest('[data-baseweb=\"select\"]') || f)"
                          f".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            b.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        b.evaluate(f"{field}.focus(); {field}.select()")
        b.call("Input.insertText", text=option)
        try:
            b.wait_for(has_option, 20)
            break
        except TimeoutError:
            key(b, "Escape", 27)
            if attempt == 5:
                raise
    key(b, "ArrowDown", 40)
    key(b, "Enter", 13)
    b.wait_for(f"{field}.value === {js(option)}")


def button(label: str) -> str:
    return f"Array.from(document.querySelectorAll('{SIDEBAR} button')).find(x => x.innerText.trim() === {js(label)})"


def engine_caption(b: Chromium, window: int) -> str:
    """Waits until the page shows the engine's numbers computed with `window` (stated by the entries); the text."""
    want = f"engine, tick level, window {window}, β source OLS, trade prices"
    # and the engine's z as a number: the caption can be drawn a moment before the metric beside it (CI saw it)
    return str(b.wait_for(f"(() => {{ const t = {BODY}; return t.includes('Engine numbers') && "
                          f"t.includes({js(want)}) && "
                          r"/z-score \(engine\)\s*\n\s*-?\d+\.\d{3}/.test(t) && t })()", 180))  # fmt: skip


def engine_z(text: str) -> float:
    found = re.search(r"z-score \(engine\)\s*\n\s*(-?\d+\.\d{3})", text)
    assert found, text[:1500]
    return float(found.group(1))


@pytest.mark.timeout(900)  # a whole stack on a shared 2-core machine; every wait below is bounded
def test_add_a_pair_and_change_its_window_from_the_sidebar(browser: Chromium, tmp_path: Path) -> None:
    for url in start_redis():
        worker = WorkerProc(url, tmp_path / "data", tmp_path / "worker.log", **STACK)
        # the dashboard loads while the worker does (each start is mostly imports, one core each)
        with dashboard_server(url, worker.api, STACK, "qs-control-") as ui:
            worker.wait_healthy()
            Proc(python_module("ingest"), service_env(url, API_URL=worker.api, **STACK), tmp_path / "ingest.log")
            b = browser
            b.navigate(ui)
            b.wait_for(f"document.querySelector('{SIDEBAR}') !== null && !!document.querySelector('h1')", 90)
            engine_caption(b, 40)  # the seeded pair is computed and labelled
            summary = (f"Array.from(document.querySelectorAll('{SIDEBAR} summary'))"
                       ".find(s => s.innerText.includes('Symbols and pairs'))")  # fmt: skip
            b.wait_for(f"!!{summary}")
            b.evaluate(f"{summary}.click()")
            # CI twice found the form saying "Pick two different symbols for Y and X." after both picks: Y had gone
            # back to its default by the time Add pair was pressed (a rerun after the X pick, under load). Not
            # understood yet (noted for the next person): the picks are made again, at most three times, and counted.
            for attempt in range(1, 4):
                choose(b, "Y (regressed)", "SOLUSDT")
                choose(b, "X", "BTCUSDT")
                click(b, button("Add pair"))
                try:
                    b.wait_for("document.querySelector('h1') && document.querySelector('h1').innerText"
                               ".startsWith('SOLUSDT/BTCUSDT')", 60)  # fmt: skip
                    break
                except TimeoutError:
                    if attempt == 3:
                        raise
            print(f"the pair was added at attempt {attempt}")
            r = redis.Redis.from_url(url)
            assert r.hexists(control.PAIRS_KEY, "SOLUSDT/BTCUSDT")
            before = engine_caption(b, 40)  # the worker computes the new pair, with the deployment's window
            z_before = engine_z(before)
            b.screenshot(ARTIFACTS / "control_pair_added.png")
            # the window, as a user types it into the engine form, then Apply
            field = f"document.querySelector('{SIDEBAR} input[aria-label=\"Window (observations)\"]')"
            b.wait_for(f"!!({field})")
            b.evaluate(f"(() => {{ const e = {field}; e.focus(); e.select(); }})()")
            b.call("Input.insertText", text="12")
            click(b, button("Apply to the engine"))
            after = engine_caption(b, 12)
            stored = json.loads(r.hget(control.PAIRS_KEY, "SOLUSDT/BTCUSDT") or b"{}")
            assert stored["window"] == 12
            # the engine's headline z is now over 12 observations, not 40: a different number (the page reruns
            # with the new entries until it is, or the wait fails)
            z_js = r"/z-score \(engine\)\s*\n\s*(-?\d+\.\d{3})/"
            z_after = b.wait_for(f"(() => {{ const m = {BODY}.match({z_js}); return m && parseFloat(m[1]) !== "
                                 f"{z_before} && {BODY}.includes({js('window 12, β source OLS')}) ? m[1] : null }})()",
                                 60)  # fmt: skip
            assert float(z_after) != z_before and "window 12" in after
            assert b.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length") == 0
            b.screenshot(ARTIFACTS / "control_window_changed.png")
