"""Incremental reads of Redis streams: each session keeps, per stream, the last id it has seen.

The first poll takes the newest `initial` entries (the latest data there is, whatever the wall clock says);
later polls read only what came after the last id, so a rerun costs the new entries, not a re-parse of the
thousands already held. New entries become a small frame that is appended to the held one.
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd
import redis
import streamlit as st

from dashboard import data

Entries = list[tuple[str, dict[str, str]]]  # what redis-py returns with decode_responses=True
TEXT_FIELDS = frozenset({"pair", "rule", "rule_id", "metric", "symbol", "symbols", "reason", "venue", "raw",
                         "source", "v", "beta_source", "price_source"})


class StreamTail:
    """The newest entries of one stream held as a frame (column `id` plus the entry fields)."""

    def __init__(self, stream: str, initial: int = 5_000, max_rows: int = 20_000, batch: int = 2_000) -> None:
        self.stream = stream
        self.initial = initial
        self.max_rows = max_rows
        self.batch = batch
        self.last_id: str | None = None
        self._frame = pd.DataFrame()
        self.version = 0

    def poll(self, r: redis.Redis) -> pd.DataFrame:
        """Read what is new since the last poll; returns the new entries (possibly empty) as a frame."""
        entries = self._read(r)
        if self.last_id is None and not entries:
            self.last_id = "0-0"
        if not entries:
            return pd.DataFrame()
        self.last_id = entries[-1][0]
        new = entries_frame(entries)
        held = [f for f in (self._frame, new) if not f.empty]
        self._frame = pd.concat(held, ignore_index=True) if len(held) > 1 else new
        if len(self._frame) > self.max_rows:
            self._frame = self._frame.iloc[-self.max_rows :].reset_index(drop=True)
        self.version += 1
        return new

    def _newest(self, r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
        return list(reversed(cast(Entries, r.xrevrange(self.stream, "+", "-", count=self.initial))))

    def _read(self, r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
        if self.last_id is None:
            return self._newest(r)
        entries: list[tuple[str, dict[str, str]]] = []
        after = self.last_id
        for _ in range(10):
            chunk = cast(Entries, r.xrange(self.stream, min=f"({after}", max="+", count=self.batch))
            entries.extend(chunk)
            if len(chunk) < self.batch:
                return entries
            after = chunk[-1][0]
        # far behind (a burst): jump to the newest entries rather than read everything
        self._frame = pd.DataFrame()
        return self._newest(r)

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame


def entries_frame(entries: list[tuple[str, dict[str, str]]]) -> pd.DataFrame:
    """Stream entries as a frame: numeric fields as float (absent = NaN), `ts` as int64 ms, text kept."""
    frame = pd.DataFrame.from_records([fields for _, fields in entries])
    frame.insert(0, "id", [entry_id for entry_id, _ in entries])
    for col in frame.columns:
        if col == "id" or col in TEXT_FIELDS:
            continue
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    for col in ("ts", "start_ms", "end_ms"):
        if col in frame and frame[col].notna().all():
            frame[col] = frame[col].astype("int64")
    return frame


def tail(stream: str, **kwargs: Any) -> StreamTail:
    """This session's tail of `stream`, created on first use."""
    key = f"_tail:{stream}"
    if key not in st.session_state:
        st.session_state[key] = StreamTail(stream, **kwargs)
    return st.session_state[key]


def poll(stream: str, **kwargs: Any) -> tuple[StreamTail, pd.DataFrame]:
    t = tail(stream, **kwargs)
    new = data.redis_call(t.poll, data.rds())
    return t, new
