"""A connection of the consumer's own for its hot commands, without redis-py's per-command machinery.

Why (issue 12, the candle group): a consumer that reads raw replies spends most of its wall time waiting for
redis-server to build the next `XREADGROUP` reply, and redis-py packs an `XACK` of 20,000 ids one argument at a
time in Python. Here a command is packed by hiredis in one call, and sending is apart from receiving, so the
next batch's `XREADGROUP` can be on its way (the server building it on the other core) while the current batch
is being stored. Reading ahead changes nothing in what is acknowledged: entries read ahead are pending to this
consumer like any delivered entry until their batch is stored and acknowledged, and a crash leaves them pending
for the next start (or a claim), as a crash inside a batch always did.

The connection is made like the pool's others (same class, host, credentials, TLS), with RESP2 (`protocol`):
its stream replies are plain arrays, measured cheaper for both the server and hiredis than RESP3's (see
docs/benchmarks.md, "Worker, candle group"). Replies are hiredis' as they are (no response callbacks).
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis

# One recv() per this many bytes: a 20,000-entry reply is ~5 MB, read 32 KiB at a time by default.
READ_SIZE = 1 << 20


class RawLink:
    """One connection; `send` queues a command, `receive` reads the oldest unread reply (replies come in order)."""

    def __init__(self, pool: redis.ConnectionPool, protocol: int = 2) -> None:
        kwargs = {**pool.connection_kwargs, "protocol": protocol, "socket_read_size": READ_SIZE}
        self._conn: Any = pool.connection_class(**kwargs)
        self.unread = 0  # commands sent whose replies have not been read

    def send(self, *args: bytes | str | int) -> None:
        try:
            self._conn.send_packed_command([hiredis.pack_command(args)], check_health=False)  # type: ignore[arg-type]
        except BaseException:
            self.reset()
            raise
        self.unread += 1

    def receive(self) -> Any:
        """The oldest unread reply; a Redis error reply is raised (as redis-py raises it)."""
        try:
            reply = self._conn.read_response()
        except BaseException:
            self.reset()  # a half-read reply or a lost connection: start again on a fresh connection
            raise
        self.unread -= 1
        return reply

    def call(self, *args: bytes | str | int) -> Any:
        self.send(*args)
        return self.receive()

    def reset(self) -> None:
        """Drop the connection and whatever it still owes (reconnected on the next send)."""
        self.unread = 0
        self._conn.disconnect()

    close = reset
