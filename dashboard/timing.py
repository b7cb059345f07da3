"""Server time of the live fragments, kept per session (the last 500 runs) for the System page and the bench."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

KEPT = 500


@contextmanager
def timed(name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        runs = st.session_state.setdefault("_timings", {}).setdefault(name, deque(maxlen=KEPT))
        runs.append((time.perf_counter() - t0) * 1000)


def summary() -> dict[str, dict[str, float]]:
    """p50 and p95 (ms) and count per fragment for this session."""
    out = {}
    for name, runs in st.session_state.get("_timings", {}).items():
        xs = sorted(runs)
        if xs:
            out[name] = {
                "p50_ms": xs[len(xs) // 2],
                "p95_ms": xs[min(len(xs) - 1, int(len(xs) * 0.95))],
                "runs": len(xs),
            }
    return out
