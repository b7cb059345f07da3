"""A token bucket that paces the messages a client sends on one WebSocket connection.

Binance disconnects a connection that sends a 6th message within a second. A bucket of `burst` tokens refilled at
`rate` per second lets through at most `burst + rate * T` messages in any window of T seconds, so burst 1 and rate 3
keep every second at 4 or fewer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def wait_s(self) -> float:
        """Take a token now and return 0, or return how long until one is there (taking nothing)."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    async def take(self) -> None:
        while (delay := self.wait_s()) > 0:
            await asyncio.sleep(delay)
