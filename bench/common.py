"""Shared pieces of the pipeline benchmarks: a private redis-server, a fast local Binance WebSocket server,
recorded frames (looped, with unique ids where it matters), subprocess helpers and Redis pollers.

Everything talks to 127.0.0.1 only, and every process started here is stopped by whoever started it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/bench_x.py` (the Makefile) as well as `python -m bench.bench_x`
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
RECORDINGS = (FIXTURES / "btcusdt_20240808.gz", FIXTURES / "ethusdt_20240808.gz")
WANTED_KINDS = ("@trade", "@bookTicker")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    """The load average, to print next to every figure (CPU is shared with other engineers' test runs)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu if ln.startswith("Model name")), "?")
    return {"nproc": str(os.cpu_count()), "cpu": model, "python": platform.python_version(),
            "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]}


# ---------------------------------------------------------------- recorded frames

def recorded_frames() -> list[bytes]:
    """Trade and book-ticker frames of both recordings, merged in receive order, as Binance sent them."""
    merged: list[tuple[int, bytes]] = []
    for path in RECORDINGS:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                ns, _, raw = line.rstrip(b"\n").partition(b" ")
                head = raw[:40]
                if any(k.encode() + b'"' in head for k in WANTED_KINDS):
                    merged.append((int(ns), raw))
    merged.sort(key=lambda f: f[0])
    return [raw for _, raw in merged]


class Restamper:
    """Rewrites frames so that every trade id, update id and trade time is unique across loops.

    Trade time `T` (= the analytics observation's `ts`) is strictly increasing, so an analytics entry
    identifies its triggering tick by `ts`, and no two observations of a pair share a time.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self.trade_id = 1
        self.update_id = 1
        self.last_ms = (start_ms or time.time_ns() // 1_000_000) - 1

    def __call__(self, raw: bytes) -> bytes:
        doc = json.loads(raw)
        d = doc["data"]
        if "t" in d:
            self.last_ms = max(time.time_ns() // 1_000_000, self.last_ms + 1)
            d["t"], d["T"], d["E"] = self.trade_id, self.last_ms, self.last_ms
            self.trade_id += 1
        else:
            d["u"] = self.update_id
            self.update_id += 1
        return json.dumps(doc, separators=(",", ":")).encode()


# ---------------------------------------------------------------- redis-server

@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if server.client().ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield server
    finally:
        stop(proc, timeout=5)


# ---------------------------------------------------------------- subprocesses

def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SOURCE", "SYMBOLS", "PAIRS", "REPLAY_FILES"}}
    # TICK_MAX_SKEW_S: the recorded frames (2024) go through the live source, stamped with today's clock
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
               BACKFILL_ENABLED="false", TICK_MAX_SKEW_S=str(3_650 * 86_400), DEPTH="false")
    # DEPTH=false: the pipeline figures stay comparable with the earlier runs (bench_book_wiring measures depth)
    env.update(extra)
    return env


def start_module(module: str, env: dict[str, str], log: Path, *args: str, root: Path = ROOT) -> subprocess.Popen[bytes]:
    """`python -m module` of this tree, or of another checkout (`root`: e.g. an older commit, for before/after)."""
    if root != ROOT:
        env = dict(env, PYTHONPATH=str(root))
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=root, stdout=fh,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[Any] | mp.Process, timeout: float = 30) -> int | None:
    """SIGTERM, wait, then SIGKILL: only the process we were given."""
    if not hasattr(proc, "poll"):  # a multiprocessing process
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        return proc.exitcode
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


# ---------------------------------------------------------------- Redis pollers

def wait_first_ticks(r: redis.Redis, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until ingest has published its first tick: its start-up (imports, connect) takes 1 s on a quiet machine
    and over 10 s on a loaded one, so a fixed warm-up after starting it is not enough."""
    deadline = time.monotonic() + timeout
    while not (r.exists("stream:ticks") and r.xlen("stream:ticks")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"ingest published nothing (exit {proc.poll()}), see {log}")
        time.sleep(0.1)


def group_acked(r: redis.Redis, stream: str = "stream:ticks") -> dict[str, int]:
    """Per consumer group: entries read and acknowledged (entries-read - pending)."""
    out = {}
    for g in r.xinfo_groups(stream):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        out[name] = int(g.get("entries-read") or 0) - int(g["pending"])
    return out


def rate_between(samples: list[tuple[float, int]], lo: int, hi: int) -> float | None:
    """Entries/s between the first samples at or past `lo` and `hi` (steady state: skips start-up and tail)."""
    a = next((s for s in samples if s[1] >= lo), None)
    b = next((s for s in samples if s[1] >= hi), None)
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# ---------------------------------------------------------------- WebSocket server

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked (server-to-client) WebSocket frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


async def _read_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the client's pings (websockets pings every 20 s) and its close."""
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(n)))
        opcode = b0 & 0x0F
        if opcode == 0x9:
            writer.write(ws_frame(data, 0xA))
        elif opcode == 0x8:
            writer.write(ws_frame(data[:2], 0x8))
            await writer.drain()
            writer.close()
            return


def _wanted(path: str) -> set[str]:
    return set(parse_qs(urlsplit(path).query).get("streams", [""])[0].split("/"))


async def _serve(port: int, frames: list[bytes], rate: float, sent: Any, ready: Any) -> None:
    """rate 0: flood (the recording looped verbatim, pre-encoded, written in big chunks, as fast as TCP
    takes it); rate > 0: paced at `rate` frames/s with unique ids and trade times (`Restamper`)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        lines = request.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        key = next(ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        wanted = {s.encode() for s in _wanted(path)}
        mine = [f for f in frames if f[11:f.index(b'"', 11)] in wanted]
        pinger = asyncio.create_task(_read_client(reader, writer))
        try:
            if rate <= 0:
                chunks, chunk, counts = [], [], []
                for f in mine:
                    chunk.append(ws_frame(f))
                    if len(chunk) == 512:
                        chunks.append(b"".join(chunk))
                        counts.append(len(chunk))
                        chunk = []
                while not pinger.done():
                    for data, n in zip(chunks, counts, strict=True):
                        writer.write(data)
                        await writer.drain()
                        sent.value += n
                        # drain() does not yield while the buffer is low: without this the loop would never
                        # see the client's close (or its disconnect) and spin on a dead socket
                        await asyncio.sleep(0)
                        if pinger.done():
                            break
            else:
                stamp = Restamper()
                t0 = time.monotonic()
                i = 0
                while not pinger.done():
                    due = int((time.monotonic() - t0) * rate) - i
                    if due > 0:
                        writer.write(b"".join(ws_frame(stamp(mine[(i + k) % len(mine)])) for k in range(due)))
                        i += due
                        sent.value = i
                        await writer.drain()
                    await asyncio.sleep(0.0005)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            pinger.cancel()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    ready.set()
    async with server:
        await server.serve_forever()


def _serve_main(port: int, rate: float, sent: Any, ready: Any) -> None:
    frames = recorded_frames()
    asyncio.run(_serve(port, frames, rate, sent, ready))


class WsServer:
    """The local Binance combined-stream server, in its own process (so it does not share our GIL)."""

    def __init__(self, rate: float = 0.0) -> None:
        self.port = free_port()
        ctx = mp.get_context("spawn")
        self.sent = ctx.Value("q", 0, lock=False)
        self._ready = ctx.Event()
        self.proc = ctx.Process(target=_serve_main, args=(self.port, rate, self.sent, self._ready), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> WsServer:
        self.proc.start()
        if not self._ready.wait(30):
            stop(self.proc)
            raise SystemExit("WebSocket server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, timeout=5)


# ---------------------------------------------------------------- pre-loading the tick stream

def preload_ticks(
    r: redis.Redis, n: int, stream: str = "stream:ticks", groups: tuple[str, ...] = ("candles", "analytics")
) -> dict[str, int]:
    """Put `n` ticks (the recordings looped, every trade id unique, trade times moving on) into the stream,
    with the consumer groups at id 0 as ingest creates them. Returns counts by kind."""
    from ingest.parser import parse_frame
    from qs_common import codec
    from qs_common.models import Trade

    ticks = [parse_frame(0, f) for f in recorded_frames()]
    encoded = [codec.encode(t) for t in ticks]  # type: ignore[arg-type]
    first_ms = min(t.ts_trade_ms for t in ticks if isinstance(t, Trade))
    last_ms = max(t.ts_trade_ms for t in ticks if isinstance(t, Trade))
    span_ms = (last_ms - first_ms) // 60_000 * 60_000 + 120_000
    r.delete(stream)
    for g in groups:
        r.xgroup_create(stream, g, id="0", mkstream=True)
    counts = {"trade": 0, "book": 0}
    trade_id = 1
    now_ns = time.time_ns()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        loop, j = divmod(i, len(encoded))
        fields = dict(encoded[j])
        fields["recv"] = now_ns + i
        if fields["kind"] == "trade":
            fields["id"] = trade_id
            trade_id += 1
            fields["ts"] = int(fields["ts"]) + loop * span_ms
            fields["ev"] = int(fields["ev"]) + loop * span_ms
        counts[str(fields["kind"])] += 1
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()
    return counts


# ---------------------------------------------------------------- py-spy

def pyspy_record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample `pid` for `seconds` into a collapsed-stack file (None if py-spy is missing)."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        print("py-spy not found (pip install py-spy): no profile")
        return None
    return subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "-f", "raw",
                             "--nonblocking", "--threads", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like `update (qs_analytics/ols.py:52)`; drop the line number
    name, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = path.replace(str(ROOT) + "/", "")
    return f"{name} ({path})"


def pyspy_summary(path: Path, top: int = 15, inclusive: tuple[str, ...] = ()) -> str:
    """Top self-time functions, per-thread shares and inclusive shares of the named functions."""
    if not path.exists():
        return f"(no profile at {path})"
    selfs: dict[str, int] = {}
    threads: dict[str, int] = {}
    incl: dict[str, int] = {k: 0 for k in inclusive}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = frames[0]
        threads[thread] = threads.get(thread, 0) + n
        leaf = _frame_name(frames[-1]) if len(frames) > 1 else thread
        selfs[leaf] = selfs.get(leaf, 0) + n
        for k in inclusive:
            if any(k in f for f in frames[1:]):
                incl[k] += n
    if not total:
        return "(empty profile)"
    out = [f"  {total} samples"]
    out.append("  threads: " + ", ".join(f"{t} {100 * n / total:.0f}%" for t, n in
                                         sorted(threads.items(), key=lambda kv: -kv[1])[:6]))
    for k, n in incl.items():
        out.append(f"  inclusive {k}: {100 * n / total:.1f}%")
    out.append("  top self time:")
    for name, n in sorted(selfs.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)
