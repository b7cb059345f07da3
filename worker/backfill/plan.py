"""What to fetch: pure functions of stored open times, the stream's "now" and the look-back. No I/O, no clock.

A job asks for the candles of one symbol and interval with open times in [start_ms, end_ms) (aligned to
the interval). Only closed candles are ever fetched (close_time < now), so a job whose range reaches past
"now" is fetched in steps, as the replay's or the market's clock passes each candle's close; `cursor_ms`
is the next open time still to fetch. Ranges include the candle on each side of a hole, because the last
candle before a disconnect and the first after it were built from only part of their trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.candles import STORED_INTERVALS

HOLE_INTERVAL = "1m"  # holes are looked for in 1m history: a quiet second is no hole, a missing minute is


@dataclass
class Job:
    symbol: str
    interval: str
    start_ms: int
    end_ms: int
    origin: str  # startup | gap | hole
    cursor_ms: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.cursor_ms < 0:
            self.cursor_ms = self.start_ms

    @property
    def key(self) -> tuple[str, str, int, int]:
        return self.symbol, self.interval, self.start_ms, self.end_ms

    @property
    def done(self) -> bool:
        return self.cursor_ms >= self.end_ms


def align_down(t_ms: int, interval_ms: int) -> int:
    return t_ms - t_ms % interval_ms


def align_up(t_ms: int, interval_ms: int) -> int:
    return -(-t_ms // interval_ms) * interval_ms


def last_closed_open(now_ms: int, interval_ms: int) -> int:
    """Open time of the newest candle closed at `now_ms` (close_time = open + interval - 1 < now)."""
    return align_down(now_ms - interval_ms, interval_ms)


def due_range(job: Job, now_ms: int) -> tuple[int, int] | None:
    """Open times [first, last] (inclusive) of the job's candles that are closed now and not yet fetched."""
    ms = STORED_INTERVALS[job.interval]
    last = min(job.end_ms - ms, last_closed_open(now_ms, ms))
    return (job.cursor_ms, last) if job.cursor_ms <= last else None


def startup_job(symbol: str, interval: str, last_open_ms: int | None, now_ms: int, lookback_ms: int) -> Job:
    """From the last stored candle (fetched again: it may be partial) up to and including the forming one."""
    ms = STORED_INTERVALS[interval]
    floor = align_down(now_ms - lookback_ms, ms)
    start = floor if last_open_ms is None else max(floor, align_down(last_open_ms, ms))
    return Job(symbol, interval, start, align_down(now_ms, ms) + ms, "startup")


def span_jobs(symbol: str, first_ms: int, last_ms: int, origin: str, intervals: list[str]) -> list[Job]:
    """Jobs covering every candle that contains a moment of [first_ms, last_ms], at each interval."""
    out = []
    for interval in intervals:
        ms = STORED_INTERVALS[interval]
        out.append(Job(symbol, interval, align_down(first_ms, ms), align_down(last_ms, ms) + ms, origin))
    return out


def hole_spans(open_times: list[int], interval_ms: int) -> list[tuple[int, int]]:
    """(last open before, first open after) for each run of missing candles in sorted open times."""
    return [(a, b) for a, b in zip(open_times, open_times[1:], strict=False) if b - a > interval_ms]


def covered(jobs: list[Job], symbol: str, interval: str, first_ms: int, end_ms: int) -> bool:
    """True when one unfinished job of the same symbol and interval still has [first_ms, end_ms) to fetch."""
    return any(
        j.symbol == symbol and j.interval == interval and j.cursor_ms <= first_ms and j.end_ms >= end_ms
        for j in jobs
    )


def clip_to_lookback(first_ms: int, last_ms: int, now_ms: int, lookback_ms: int) -> tuple[int, int] | None:
    """The part of [first_ms, last_ms] inside the look-back window, or None."""
    first = max(first_ms, now_ms - lookback_ms)
    return (first, last_ms) if first <= last_ms else None
