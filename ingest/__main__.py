"""`python -m ingest`: parse flags, set up logging, run until the source ends or SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from redis.exceptions import RedisError

from ingest.loop import Ingest
from ingest.sources.base import FrameSource
from ingest.sources.binance import BinanceSource
from ingest.sources.replay import ReplaySource
from ingest.sources.tick_file import TickFileSource
from qs_common import control
from qs_common.logs import setup_logging
from qs_common.redis_client import aconnect, connect
from qs_common.redis_wait import StartupError, wait_for_redis
from qs_common.settings import Settings, Source, load_settings

log = logging.getLogger("ingest")


FOLLOWS_REGISTRY = (Source.BINANCE, Source.SYNTHETIC)  # replays and tick files are driven by their files


def start_symbols(settings: Settings) -> tuple[str, ...]:
    """The symbols to subscribe at start: the live registry's (seeded from SYMBOLS on a fresh Redis, so a
    restart comes back with the set users made), or SYMBOLS for the file sources."""
    if settings.source not in FOLLOWS_REGISTRY:
        return settings.symbols
    r = connect(settings.redis_url, settings.redis_cluster, socket_timeout=10)
    try:
        control.seed(r, settings)
        return control.active_symbols(r)
    finally:
        r.close()


def build_source(settings: Settings, limit: int | None = None, symbols: tuple[str, ...] | None = None) -> FrameSource:
    symbols = settings.symbols if symbols is None else symbols
    if settings.source is Source.REPLAY:
        return ReplaySource(list(settings.replay_files), settings.replay_speed)
    if settings.source is Source.TICKS:
        return TickFileSource(list(settings.tick_files), settings.replay_speed)
    if settings.source is Source.SYNTHETIC:
        # imported here: its model pulls in scipy.signal, ~75 % of ingest's import time, which the other sources
        # do not need (every ingest start paid it)
        from ingest.sources.synthetic import SyntheticSource

        return SyntheticSource(symbols, settings.synthetic_seed, settings.synthetic_rate, limit,
                               settings.synthetic_history_h, settings.api_url, settings.access_token)
    return BinanceSource(
        settings.ws_url, symbols, settings.stale_feed_s, settings.reconnect_after_h * 3600,
        settings.backoff_max_s, settings.depth,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ingest", description="Binance feed -> Redis Streams")
    p.add_argument("--source", choices=[s.value for s in Source], help="overrides SOURCE")
    p.add_argument("--replay-file", action="append", type=Path, default=[], help="recording to replay (repeatable)")
    p.add_argument("--tick-file", action="append", type=Path, default=[],
                   help="tick file (timestamp,symbol,price,size CSV or NDJSON) to replay (repeatable)")
    p.add_argument("--speed", type=float, help="replay and tick-file pace, 0 = as fast as possible (REPLAY_SPEED)")
    p.add_argument("--limit", type=int, help="synthetic: stop after this many frames")
    return p.parse_args(argv)


async def _main(settings: Settings, limit: int | None) -> int:
    try:
        symbols = start_symbols(settings)
        source = build_source(settings, limit, symbols)
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    except RedisError as exc:
        log.error("cannot read the symbol registry at %s: %s", settings.redis_url, exc)
        return 1
    log.info("symbols: %s", ",".join(symbols) or "none yet (add one from the dashboard or the API)")
    r = aconnect(settings.redis_url, settings.redis_cluster)
    ingest = Ingest(settings, source, r, symbols)
    task = asyncio.create_task(ingest.run())
    loop = asyncio.get_running_loop()

    def _cancel() -> None:
        # Only when the loop did not stop by itself (a source waiting for frames); repeat until it
        # takes, since a cancellation that races a finishing wait_for can be swallowed.
        if not task.done():
            task.cancel()
            loop.call_later(0.5, _cancel)

    def _stop() -> None:
        ingest.request_stop()
        loop.call_later(1.0, _cancel)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped by signal")
    finally:
        await r.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides: dict[str, object] = {}
    if args.source:
        overrides["source"] = args.source
    if args.replay_file:
        overrides["replay_files"] = tuple(args.replay_file)
    if args.tick_file:
        overrides["tick_files"] = tuple(args.tick_file)
    if args.speed is not None:
        overrides["replay_speed"] = args.speed
    settings = load_settings(**overrides)
    setup_logging(settings.log_level, "ingest")
    try:
        wait_for_redis(settings.redis_url, settings.redis_wait_s, settings.redis_cluster)
    except StartupError as exc:  # one line, never a traceback
        print(exc, file=sys.stderr)
        return exc.code
    try:
        return asyncio.run(_main(settings, args.limit))
    except OSError as exc:
        log.error("cannot reach Redis at %s: %s", settings.redis_url, exc)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
