"""Does webhook delivery cost the analytics loop? The analytics handler in process (its webhook threads too, same
interpreter and GIL), µs per tick over pre-loaded recorded ticks, side by side:

- `no webhook`: the default rule only (|z| >= 2 on every pair, alerts written, nothing posted);
- `hanging`: plus 8 rules (|z| >= 1, no hysteresis: many alerts) posting to a local receiver that never answers;
- `refused`: plus 8 such rules posting to a port where nothing listens (fast failures, retries with backoff);
- `answering`: plus 8 such rules posting to a local receiver that answers 200 at once.

Prints figures and the delivery counters at the end of each run; asserts nothing. Run from the repository root:
`python -m bench.bench_webhooks [--ticks 60000] [--batch 5000]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import free_port, load, machine, preload_ticks, redis_server


def receiver(hang: bool, release: threading.Event) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            if hang:
                release.wait(120)
                return
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=5_000)
    a = ap.parse_args()
    release = threading.Event()
    hang, fine = receiver(True, release), receiver(False, release)
    urls = {"no webhook": None, "hanging": f"http://127.0.0.1:{hang.server_address[1]}/",
            "refused": f"http://127.0.0.1:{free_port()}/", "answering": f"http://127.0.0.1:{fine.server_address[1]}/"}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        os.environ.update(REDIS_URL=server.url, SYMBOLS="BTCUSDT,ETHUSDT", PAIRS="ETHUSDT/BTCUSDT")
        from qs_analytics.alerts import AlertRule, default_rule
        from qs_common import keys
        from qs_common.settings import Settings
        from worker.analytics_consumer import AnalyticsHandler

        r = server.client()
        counts = preload_ticks(r, a.ticks, groups=())
        entries = r.xrange("stream:ticks")
        batches = [entries[i:i + a.batch] for i in range(0, len(entries), a.batch)]
        print(f"machine {machine()}; {counts}; batch {a.batch}")
        for case, url in urls.items():
            for key in (keys.ALERT_RULES, keys.ALERTS_STREAM, keys.ANALYTICS_STREAM, keys.ALERT_RULES_SEEDED,
                        f"status:{keys.STATUS_WORKER_WEBHOOKS}", *r.scan_iter("control:*")):  # fmt: skip
                r.delete(key)
            rules = [default_rule()]
            if url is not None:
                rules += [AlertRule.from_expression(f"w{i}", "|z| >= 1", webhook=url) for i in range(8)]
            r.set(keys.ALERT_RULES_SEEDED, "1")
            r.hset(keys.ALERT_RULES, mapping={x.id: x.to_json() for x in rules})
            handler = AnalyticsHandler(Settings(), r)  # type: ignore[call-arg]
            t0 = time.perf_counter()
            for b in batches:
                handler(b)
            us = (time.perf_counter() - t0) / len(entries) * 1e6
            st = handler.webhooks.status()
            if hasattr(handler, "close"):
                handler.close()
            handler.webhooks.close(timeout=1)
            alerts = r.xlen(keys.ALERTS_STREAM)
            print(f"  {case:<11} {us:7.2f} µs/tick  alerts {alerts:>6}  delivered {st['delivered']:>5}"
                  f"  failures {st['failures']:>5}  in hand {st['in_hand']:>5}  load {load()}")
    release.set()
    hang.shutdown()
    fine.shutdown()


if __name__ == "__main__":
    main()
