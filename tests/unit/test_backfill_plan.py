"""The planner: which candles to fetch, never one that is still forming."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.backfill import plan
from worker.backfill.plan import Job

M = 60_000
T0 = 1723161300000  # 2024-08-08 23:55:00Z


def test_last_closed_open_is_strict() -> None:
    assert plan.last_closed_open(T0 + M - 1, M) == T0 - M  # 23:55 closes at 23:55:59.999, not yet past
    assert plan.last_closed_open(T0 + M, M) == T0
    assert plan.last_closed_open(T0 + 29_900, 1_000) == T0 + 28_000


@given(now=st.integers(T0, T0 + 10 * M), start=st.integers(T0 - 10 * M, T0 + 10 * M), n=st.integers(1, 30),
       interval=st.sampled_from(["1s", "1m", "5m"]))
def test_due_range_holds_only_closed_candles_of_the_job(now: int, start: int, n: int, interval: str) -> None:
    ms = {"1s": 1_000, "1m": M, "5m": 5 * M}[interval]
    a = plan.align_down(start, ms)
    job = Job("BTCUSDT", interval, a, a + n * ms, "hole")
    due = plan.due_range(job, now)
    if due is None:
        assert a + ms - 1 >= now  # the first candle is still forming
    else:
        first, last = due
        assert first == a and last + ms - 1 < now and last < job.end_ms and last % ms == 0
        assert last + ms >= job.end_ms or last + 2 * ms - 1 >= now  # nothing closed was left out


def test_startup_job_refetches_the_last_stored_candle_and_reaches_the_forming_one() -> None:
    now = T0 + 29_900
    job = plan.startup_job("BTCUSDT", "1m", T0 - 3 * M, now, 24 * 3_600_000)
    assert (job.start_ms, job.end_ms, job.cursor_ms) == (T0 - 3 * M, T0 + M, T0 - 3 * M)
    assert plan.due_range(job, now) == (T0 - 3 * M, T0 - M)


def test_startup_job_without_history_and_old_history_use_the_look_back() -> None:
    now = T0 + 29_900
    fresh = plan.startup_job("BTCUSDT", "5m", None, now, 3_600_000)
    old = plan.startup_job("BTCUSDT", "5m", T0 - 10 * 3_600_000, now, 3_600_000)
    assert fresh.start_ms == old.start_ms == plan.align_down(now - 3_600_000, 300_000)


def test_span_jobs_cover_the_edge_candles_at_every_interval() -> None:
    jobs = plan.span_jobs("BTCUSDT", T0 + 89_900, T0 + 190_100, "gap", ["1s", "1m", "5m"])
    got = {j.interval: (j.start_ms, j.end_ms) for j in jobs}
    assert got == {"1s": (T0 + 89_000, T0 + 191_000), "1m": (T0 + M, T0 + 4 * M), "5m": (T0, T0 + 5 * M)}


def test_hole_spans_and_coverage() -> None:
    opens = [T0, T0 + M, T0 + 4 * M, T0 + 5 * M, T0 + 7 * M]
    assert plan.hole_spans(opens, M) == [(T0 + M, T0 + 4 * M), (T0 + 5 * M, T0 + 7 * M)]
    job = Job("BTCUSDT", "1m", T0, T0 + 6 * M, "startup", cursor_ms=T0 + M)
    assert plan.covered([job], "BTCUSDT", "1m", T0 + 2 * M, T0 + 4 * M)
    assert not plan.covered([job], "BTCUSDT", "1m", T0 + 6 * M, T0 + 7 * M)
    assert not plan.covered([job], "ETHUSDT", "1m", T0 + 2 * M, T0 + 4 * M)


def test_clip_to_lookback() -> None:
    assert plan.clip_to_lookback(T0, T0 + M, T0 + 2 * M, M) == (T0 + M, T0 + M)
    assert plan.clip_to_lookback(T0, T0 + M, T0 + 10 * M, M) is None
