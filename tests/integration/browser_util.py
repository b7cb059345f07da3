"""Shared by the dashboard tests and bench: a real redis-server, the real worker API, seeded live keys.

The worker API is `python -m worker --role candles` over a DuckDB file seeded with known candles; Redis is the
real server, seeded with the keys the worker writes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import redis
from websockets.sync.client import connect as ws_connect

from qs_common import keys
from tests.conftest import free_port
from tests.conftest import start_redis as _start_redis

ROOT = Path(__file__).resolve().parents[2]
KLINES = ROOT / "tests" / "fixtures" / "BTCUSDT-1m-2024-08-08.csv"
HEADER = "open_time,open,high,low,close,volume,quote_volume,trades,taker_buy_volume"


def start_redis() -> Iterator[str]:
    """A private redis-server (the suite's own `tests.conftest.start_redis`) for a `for url in ...` block."""
    workdir = Path(tempfile.mkdtemp(prefix="qs-redis-"))
    server = _start_redis(workdir)
    try:
        yield server.url
    finally:
        server.proc.terminate()
        server.proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until `url` answers; fails at once when `proc` (the server behind it) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def dashboard_server(redis_url: str, api_url: str, env: dict[str, str], prefix: str) -> Iterator[str]:
    """`python -m dashboard` on a free port (for these symbols and pair), its URL while the block runs."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    full = {**os.environ, "REDIS_URL": redis_url, "API_URL": api_url, "SYMBOLS": "BTCUSDT,ETHUSDT",
            "PAIRS": "ETHUSDT/BTCUSDT", "DASHBOARD_HOST": "127.0.0.1", "PYTHONPATH": str(ROOT), **env}
    with (tmp / "streamlit.log").open("wb") as log:
        ui = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=tmp, env=full,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", ui)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(ui)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def app_test_env(redis_url: str, api_url: str) -> Iterator[None]:
    """The environment of an in-process dashboard (Streamlit's AppTest) on these servers, for ETHUSDT/BTCUSDT;
    the old environment is restored and Streamlit's caches cleared on both sides."""
    import streamlit as st  # only the AppTest users pay for it

    old = {k: os.environ.get(k) for k in ("REDIS_URL", "API_URL", "SYMBOLS", "PAIRS")}
    os.environ.update(REDIS_URL=redis_url, API_URL=api_url, SYMBOLS="ETHUSDT,BTCUSDT", PAIRS="ETHUSDT/BTCUSDT")
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        st.cache_resource.clear()
        st.cache_data.clear()


def kline_candles() -> dict[str, list[dict[str, str]]]:
    """BTCUSDT's official 1m klines of 2024-08-08 and an ETHUSDT series that follows it (β ≈ 0.0432)."""
    btc, eth = [], []
    for i, line in enumerate(KLINES.read_text().splitlines()):
        f = line.split(",")
        btc.append(dict(zip(HEADER.split(","), [f[0], f[1], f[2], f[3], f[4], f[5], f[7], f[8], f[9]], strict=True)))
        wiggle = 3 * math.sin(i / 7)
        o, h, lo, c = (float(v) * 0.0432 + wiggle for v in (f[1], f[2], f[3], f[4]))
        eth.append(
            {
                "open_time": f[0],
                "open": f"{o:.2f}",
                "high": f"{max(o, h, c):.2f}",
                "low": f"{min(o, lo, c):.2f}",
                "close": f"{c:.2f}",
                "volume": f"{float(f[5]) * 15:.4f}",
                "quote_volume": "0",
                "trades": f[8],
                "taker_buy_volume": "0",
            }
        )
    return {"BTCUSDT": btc, "ETHUSDT": eth}


class WorkerApi:
    """The real worker API: `python -m worker --role candles` over a DuckDB file seeded with these candles.

    The candles go in through the store's own import path (source 'import'); backfill is off, so what the
    pages show can be checked against the fixture.
    """

    def __init__(
        self, candles: dict[str, list[dict[str, str]]], redis_url: str, env: dict[str, str] | None = None
    ) -> None:
        from worker.api import parse_import_csv
        from worker.store import CandleStore

        self.dir = Path(tempfile.mkdtemp(prefix="qs-api-"))
        store = CandleStore(self.dir / "data" / "market_data.duckdb")
        try:
            for symbol, rows in candles.items():
                body = "\n".join([HEADER] + [",".join(r[k] for k in HEADER.split(",")) for r in rows])
                store.import_candles(symbol, "1m", parse_import_csv(body.encode(), 60_000).frame)
        finally:
            store.close()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "REDIS_URL": redis_url, "DATA_DIR": str(self.dir / "data"), "API_PORT": str(port),
               "BACKFILL_ENABLED": "false", "KLINE_CHECK": "false", "PYTHONPATH": str(ROOT), **(env or {})}
        self._log = (self.dir / "worker.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "worker", "--role", "candles"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> WorkerApi:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "worker.log").read_text())
            try:
                with urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("worker API did not become healthy")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stored(self) -> dict[tuple[str, str], int]:
        """Stored candle counts by (symbol, interval)."""
        with urlopen(self.url + "/symbols", timeout=10) as resp:
            return {(s["symbol"], s["interval"]): s["count"] for s in json.loads(resp.read())["symbols"]}

    def candles(self, symbol: str, start: int, end: int) -> list[dict[str, Any]]:
        query = f"/candles?symbol={symbol}&interval=1m&start={start}&end={end}"
        with urlopen(self.url + query, timeout=10) as resp:
            return list(json.loads(resp.read())["candles"])


@contextlib.contextmanager
def api_and_dashboard(
    candles: dict[str, list[dict[str, str]]], redis_url: str, api_env: dict[str, str], ui_env: dict[str, str],
    prefix: str,
) -> Iterator[tuple[WorkerApi, str]]:
    """The worker API over these candles and `python -m dashboard` over it, started side by side (each start is
    mostly imports, so on two cores they load together); the API is healthy in the block, both stopped after it."""
    api = WorkerApi(candles, redis_url, api_env)  # its process starts here
    try:
        with dashboard_server(redis_url, api.url, ui_env, prefix) as url:
            api.__enter__()  # healthy
            yield api, url
    finally:
        api.__exit__()


def seed_live(r: redis.Redis, candles: dict[str, list[dict[str, str]]], analytics: int = 200) -> None:
    """What the worker writes: forming candles, top of book, analytics entries and status records."""
    last_ms = int(candles["BTCUSDT"][-1]["open_time"])
    for sym, rows in candles.items():
        forming = {**rows[-1], "close": str(round(float(rows[-1]["close"]) + 1.0, 2))}
        forming["high"] = str(max(float(forming["high"]), float(forming["close"])))
        r.set(keys.forming_candle_key(sym, "1m"), json.dumps(forming))
        px = float(forming["close"])
        r.set(
            keys.latest_book_key(sym),
            json.dumps(
                {
                    "bid": f"{px - 0.01:.2f}",
                    "bid_qty": "3.5",
                    "ask": f"{px + 0.01:.2f}",
                    "ask_qty": "1.5",
                    "update_id": 1,
                    "recv_ns": last_ms * 10**6,
                    "ts": last_ms,
                }
            ),
        )
    for i in range(analytics):
        ts = last_ms - (analytics - i) * 100
        r.xadd(
            keys.ANALYTICS_STREAM,
            {
                "v": "1",
                "pair": "ETHUSDT/BTCUSDT",
                "ts": ts,
                "recv_ns": ts * 10**6,
                "y": "2660",
                "x": "61600",
                "ols_beta": 0.043 + i * 1e-6,
                "ols_alpha": 1.0,
                "ols_r2": 0.97,
                "kalman_beta": 0.0431,
                "spread": 0.1,
                "zscore": 1.25,
                "n": i + 1,
            },
        )
    now = int(time.time() * 1000)
    r.set(
        keys.status_key("ingest"),
        json.dumps(
            {
                "process": "ingest",
                "updated_ms": now,
                "state": "connected",
                "source": "replay",
                "venue": "binance-spot",
                "connected_since_ms": now - 60_000,
                "frames": 100,
                "frames_per_s": 12.5,
                "dead_letters": 0,
                "gaps": 1,
                "last_frame_ms": now - 300,
            }
        ),
    )
    r.set(
        keys.status_key("worker-candles"),
        json.dumps(
            {
                "process": "worker-candles",
                "updated_ms": now,
                "state": "running",
                "entries": 5,
                "entries_per_s": 1.0,
                "lag": 0,
                "pending": 0,
            }
        ),
    )
    r.set(
        keys.status_key("worker-backfill"),
        json.dumps(
            {
                "process": "worker-backfill",
                "updated_ms": now,
                "state": "running",
                "symbols_done": 1,
                "fetched": 1440,
                "last_error": "",
            }
        ),
    )
    r.xadd(
        keys.GAPS_STREAM,
        {
            "start_ms": last_ms - 60_000,
            "end_ms": last_ms - 30_000,
            "symbols": "BTCUSDT",
            "reason": "reconnect",
            "venue": "binance-spot",
        },
    )


class Chromium:
    """Headless /usr/bin/chromium driven over the DevTools protocol (one page, synchronous calls)."""

    FLAGS = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1600,2400",
    )

    def __init__(self, binary: str = "/usr/bin/chromium") -> None:
        self.profile = tempfile.mkdtemp(prefix="qs-chromium-")
        self.proc = subprocess.Popen(
            [binary, *self.FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
            pages = [t for t in json.loads(resp.read()) if t["type"] == "page"]
        self.ws = ws_connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10, legacy=True)
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params: object) -> dict[str, Any]:
        self._id += 1
        msg_id = self._id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"script error: {out['exceptionDetails']}")
        return out["result"].get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Poll a JS expression until it is truthy; return its value (or raise with the last value)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        page = self.evaluate("location.href + ' :: ' + (document.body ? document.body.innerText.slice(0, 500) : '')")
        raise TimeoutError(f"{expression!r} stayed falsy ({value!r}); page: {page}")

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files for an <input type=file>, as the file dialog would."""
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise RuntimeError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input and type into it as a user would (React sees real input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def allow_downloads(self, folder: Path) -> None:
        """Save downloads into `folder` without asking."""
        self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def click_button(self, label: str) -> None:
        """Click the first button whose text contains `label`, once it is there."""
        find = f"Array.from(document.querySelectorAll('button')).find(b => b.innerText.includes({json.dumps(label)}))"
        self.wait_for(f"!!{find}")
        self.evaluate(f"{find}.click()")

    def screenshot(self, path: Path) -> None:
        height = int(self.evaluate("Math.max(document.body.scrollHeight, 2400)") or 2400)
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1600, "height": min(height, 6000), "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
