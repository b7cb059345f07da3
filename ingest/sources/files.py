"""What the file sources (replay, tick files) share: checking the files up front and pacing what they read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_YIELD_EVERY = 2_000  # let other tasks (status, flush) run during a full-speed replay


def check_files(files: list[Path], what: str, setting: str) -> None:
    """Refuse at start, naming the problem, rather than fail mid-run."""
    if not files:
        raise ValueError(f"the {what} source needs at least one file ({setting})")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{what} file not found: {', '.join(missing)}")


async def paced(items: Iterable[tuple[int, T]], speed: float) -> AsyncIterator[tuple[int, T]]:
    """`(time ns, item)` in order; at `speed` 1 with the recorded spacing, at 2 twice as fast, at 0 at once.
    Items with time 0 (no time known) are never waited for."""
    first_ns: int | None = None
    start = time.monotonic()
    for n, (ns, item) in enumerate(items):
        if speed > 0 and ns:
            if first_ns is None:
                first_ns = ns
            ahead = (ns - first_ns) / 1e9 / speed - (time.monotonic() - start)
            if ahead > 0.001:
                await asyncio.sleep(ahead)
        elif n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        yield ns, item
