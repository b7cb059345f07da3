"""Time parsing shared by the API, backfill and uploads: integer ms UTC inside, whatever comes in."""

from __future__ import annotations

from datetime import UTC, datetime

US_FROM = 10**14  # epoch values this large are µs (ms would be past the year 5000)
NS_FROM = 10**17


def epoch_to_ms(t: int) -> int:
    """Epoch ms from ms, µs or ns, told apart by size (Binance moved its spot files to µs in 2025)."""
    if abs(t) >= NS_FROM:
        return t // 1_000_000
    if abs(t) >= US_FROM:
        return t // 1_000
    return t


def iso_to_ms(text: str) -> int:
    """ISO-8601 to epoch ms; a time without a zone is UTC. ValueError if it is not ISO-8601."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
