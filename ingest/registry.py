"""Ingest follows the live registry of symbols (`qs_common.control`): the set a running feed subscribes.

Once a second it asks Redis whether `{control}:version` moved (one GET); when it did, the new set is applied to the
source (SUBSCRIBE / UNSUBSCRIBE on the open connections) and to the parser's subscribed set. A symbol is added to
the parser's set before the source subscribes it and removed only after the venue confirmed the UNSUBSCRIBE, so
the frames in flight either way are published, not dead-lettered as unsubscribed. Changes that arrive while one
is applied are coalesced into the next poll.

Only sources whose symbols can change follow it (`SymbolControl`: live Binance, synthetic); replays and tick
files are driven by their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from ingest.parser import EdgeRules
from ingest.sources.base import SymbolControl
from qs_common import control
from qs_common.redis_client import connect

log = logging.getLogger("ingest")

POLL_S = 1.0


class SymbolFollower:
    def __init__(self, redis_url: str, source: SymbolControl, rules: EdgeRules, symbols: tuple[str, ...],
                 on_removed: Callable[[str], None], cluster: bool = False) -> None:
        self.redis_url = redis_url
        self.cluster = cluster  # REDIS_CLUSTER: the URL is a seed node of a Redis Cluster
        self.source = source
        self.rules = rules
        self.symbols = tuple(sorted(symbols))
        self.on_removed = on_removed
        self.changes = 0
        self.poll_errors = 0

    async def apply(self, symbols: tuple[str, ...]) -> None:
        new, old = set(symbols), set(self.symbols)
        if new == old:
            return
        added, removed = sorted(new - old), sorted(old - new)
        log.info("symbols from the registry: +%s -%s", ",".join(added) or "none", ",".join(removed) or "none")
        self.rules.set_symbols(frozenset(new | old))
        await self.source.set_symbols(tuple(sorted(new)))
        self.rules.set_symbols(frozenset(new))
        for sym in removed:
            self.on_removed(sym)
        self.symbols = tuple(sorted(new))
        self.changes += 1

    async def run(self, stopping: asyncio.Event) -> None:
        client = connect(self.redis_url, self.cluster, socket_timeout=5)
        watcher = control.Watcher(client)
        try:
            while not stopping.is_set():
                try:
                    seen = await asyncio.to_thread(watcher.poll)
                    if seen is not None:
                        await self.apply(seen[0])
                except (RedisError, OSError) as exc:  # Redis down a moment: the next poll retries
                    self.poll_errors += 1
                    watcher.seen = None
                    log.warning("registry poll failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), POLL_S)
        finally:
            client.close()
