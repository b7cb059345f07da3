"""Entries of `stream:deadletter` and its bound, shared by every process that writes it.

The stream is bounded in bytes (DEADLETTER_MAX_MB), not only in entries: each entry's `raw` is cut to RAW_LIMIT
and its `reason` to REASON_LIMIT, so MAXLEN = DEADLETTER_MAX_MB / (RAW_LIMIT + REASON_LIMIT) entries can never
hold more than the setting (plus one macro node of Redis's approximate trim).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

RAW_LIMIT = 64 * 1024
REASON_LIMIT = 1024


def maxlen(max_mb: float) -> int:
    """MAXLEN of the dead-letter stream for a bound of `max_mb` MiB."""
    return max(1, int(max_mb * 2**20) // (RAW_LIMIT + REASON_LIMIT))


def _text(value: bytes | str) -> str:
    # Non-UTF-8 bytes stay visible (and reversible) as \xNN instead of breaking every reader of the stream.
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else value


def raw_json(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> str:
    """A stream entry's fields as JSON text (bytes decoded with backslashreplace), at most RAW_LIMIT characters."""
    text = json.dumps({_text(k): _text(v) for k, v in fields.items()})  # ASCII: characters == bytes
    return text[:RAW_LIMIT]


def reason_text(reason: str) -> str:
    """One line, at most REASON_LIMIT characters."""
    line = " ".join(reason.split())
    return line if len(line) <= REASON_LIMIT else line[: REASON_LIMIT - 1] + "…"
