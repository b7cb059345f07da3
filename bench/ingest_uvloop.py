"""`python -m ingest` on uvloop's event loop instead of asyncio's, for bench_ingest's side-by-side figure.

The policy is set before ingest's `asyncio.run` creates its loop; nothing else differs.
"""

from __future__ import annotations

import asyncio

import uvloop

from ingest.__main__ import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    raise SystemExit(main())
