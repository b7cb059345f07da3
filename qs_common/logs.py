"""Logging set-up shared by the processes: one line per state change, never one per message."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, process: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s",
        force=True,
    )
    # Libraries log every request or frame at INFO/DEBUG; keep them at WARNING.
    for noisy in ("websockets", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
