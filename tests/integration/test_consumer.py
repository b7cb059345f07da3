"""The consumer-group loop against a real Redis: pending re-reads, deleted entries, abandoned entries."""

from __future__ import annotations

import threading
import time

import pytest

from qs_common.codec import fields_dict
from worker.consumer import GroupConsumer

pytestmark = pytest.mark.integration
FLAT = pytest.mark.parametrize("flat", [False, True], ids=["dict-fields", "flat-fields"])


def n_of(fields, flat):
    """The entry's `n`: flat consumers get the reply's [name, value, ...] list, the others a dict."""
    assert isinstance(fields, list) is flat
    return int(fields_dict(fields)[b"n"])


@FLAT
def test_pending_entries_are_re_read_and_deleted_ones_acknowledged(r, flat):
    ids = [r.xadd("s", {"n": i}) for i in range(10)]
    r.xgroup_create("s", "g", id="0")
    r.xreadgroup("g", "c1", {"s": ">"}, count=10)  # delivered, then the consumer "crashes"
    r.xdel("s", ids[3], ids[7])
    seen: list[int] = []
    consumer = GroupConsumer(r, "s", "g", "c1", lambda entries: seen.extend(n_of(f, flat) for _, f in entries), batch=4,
                             flat_fields=flat)
    consumer._own_pending()
    assert seen == [0, 1, 2, 4, 5, 6, 8, 9]
    assert r.xpending("s", "g")["pending"] == 0


@FLAT
def test_abandoned_entries_of_another_consumer_are_claimed_and_a_failing_batch_is_retried(r, flat):
    for i in range(5):
        r.xadd("s", {"n": i})
    r.xgroup_create("s", "g", id="0")
    r.xreadgroup("g", "dead", {"s": ">"}, count=3)  # a consumer that died holding three entries
    calls: list[list[int]] = []

    def flaky(entries):
        calls.append([n_of(f, flat) for _, f in entries])
        if len(calls) == 1:
            raise RuntimeError("disk full")  # the first attempt fails: the batch must come again, not be skipped

    consumer = GroupConsumer(r, "s", "g", "alive", flaky, batch=10, block_ms=50, claim_idle_ms=1_000, flat_fields=flat)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    consumer._last_claim = float("inf")  # no periodic claim in this test: the start-up claim is what we test
    time.sleep(1.1)  # the dead consumer's entries become idle long enough to claim
    t.start()
    deadline = time.monotonic() + 10
    while r.xpending("s", "g")["pending"] or sum(len(c) for c in calls) < 8:
        assert time.monotonic() < deadline, calls
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert calls[0] == calls[1] == [0, 1, 2]  # claimed, failed once, retried
    assert sorted(n for c in calls[1:] for n in c) == [0, 1, 2, 3, 4]
    assert consumer.stats.failed_batches == 1 and consumer.stats.entries == 5


@FLAT
def test_full_batches_read_ahead_and_a_stop_leaves_nothing_delivered_unhandled(r, flat):
    """A flat consumer asks for the next batch while it stores a full one (worker.raw_link): every entry is still
    handled once, in stream order, and a stop in the middle handles the batch already asked for, so nothing stays
    pending. A dict consumer (no read connection) behaves the same."""
    for i in range(100):
        r.xadd("s", {"n": i})
    r.xgroup_create("s", "g", id="0")
    seen: list[int] = []
    stop = threading.Event()
    pending_while_handling: list[int] = []

    def handler(entries):
        # the read-ahead is sent on another connection just before: wait until the server has taken it
        deadline = time.monotonic() + (2 if flat else 0)
        while (pending := int(r.xpending("s", "g")["pending"])) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        pending_while_handling.append(pending)
        seen.extend(n_of(f, flat) for _, f in entries)
        if len(seen) == 40:
            stop.set()  # mid-stream: the batch asked for meanwhile must still be handled and acknowledged

    consumer = GroupConsumer(r, "s", "g", "c1", handler, batch=10, block_ms=50, flat_fields=flat)
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    t.join(10)
    assert not t.is_alive()
    read_ahead = 10 if flat else 0  # the next full batch is delivered (pending) while this one is handled
    assert seen == list(range(40 + read_ahead))
    assert pending_while_handling[1:4] == [10 + read_ahead] * 3
    assert r.xpending("s", "g")["pending"] == 0
    assert consumer.stats.entries == 40 + read_ahead


@FLAT
def test_pending_entries_of_several_batches_are_told_in_one_line(r, flat, caplog):
    """A consumer that read a batch ahead may leave two batches pending: the restart says how many in all."""
    for i in range(25):
        r.xadd("s", {"n": i})
    r.xgroup_create("s", "g", id="0")
    r.xreadgroup("g", "c1", {"s": ">"}, count=25)  # delivered, then the consumer "crashes"
    r.xreadgroup("g", "other", {"s": "0"}, count=25)  # another consumer's (none): not counted as this one's
    seen: list[int] = []
    consumer = GroupConsumer(r, "s", "g", "c1", lambda entries: seen.extend(n_of(f, flat) for _, f in entries),
                             batch=10, flat_fields=flat)
    with caplog.at_level("INFO", logger="worker.consumer"):
        consumer._own_pending()
    assert seen == list(range(25))
    assert [rec.getMessage() for rec in caplog.records if "re-reading" in rec.getMessage()] == \
        ["g: re-reading 25 pending entries"]


@pytest.mark.parametrize("linger_ms", [0, 400])
def test_a_lingering_consumer_stores_fewer_larger_batches_and_loses_nothing(r, linger_ms):
    """The candle group's linger (CANDLE_LINGER_MS): after a batch that was not full it waits before reading again,
    so entries arriving one by one are taken a few at a time (each batch costs the store a fixed ~17 ms)."""
    r.xgroup_create("s", "g", id="0", mkstream=True)
    batches: list[list[int]] = []
    consumer = GroupConsumer(r, "s", "g", "c", lambda entries: batches.append([n_of(f, True) for _, f in entries]),
                             batch=1_000, block_ms=50, flat_fields=True, linger_ms=linger_ms)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    try:
        for i in range(60):  # one entry every 20 ms for 1.2 s, as ingest's small flushes arrive
            r.xadd("s", {"n": i})
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while r.xpending("s", "g")["pending"] or sum(len(b) for b in batches) < 60:
            assert time.monotonic() < deadline, batches
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(10)
    assert sorted(n for b in batches for n in b) == list(range(60))  # each once
    if linger_ms:
        assert len(batches) <= 6, [len(b) for b in batches]  # ~1.2 s / 0.4 s, plus the first
    else:
        assert len(batches) >= 15, [len(b) for b in batches]  # about one read per arrival
