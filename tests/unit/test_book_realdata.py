"""The order book against Binance's own oracle: recorded depth diffs, the REST snapshot and book tickers of one
connection (BTCUSDT and ETHUSDT, 2024-08-08, tests/fixtures/SOURCE.md).

A book ticker's `u` is the update id of the book state it shows, so after every depth event whose final u equals
a book ticker's u, the local book's best bid and ask (price and quantity, as text) must be that ticker's exactly.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from qs_analytics.book.sync import Action, BookSync
from qs_common.depth import DepthDiff, DepthSnapshot
from qs_common.venues.binance.wire import (
    BookTickerMsg,
    DepthSnapshotMsg,
    DepthUpdateMsg,
    diff_from_msg,
    snapshot_from_msg,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDINGS = {"BTCUSDT": "btcusdt_20240808.gz", "ETHUSDT": "ethusdt_20240808.gz"}
# Counted independently when the recordings were checked (../shared/realdata/README.md).
EXPECTED_MATCHES = {"BTCUSDT": 564, "ETHUSDT": 577}

Event = DepthDiff | DepthSnapshot
Ticker = tuple[str, str, str, str]  # bid, bid qty, ask, ask qty


@cache
def recording(symbol: str) -> tuple[list[Event], dict[int, Ticker]]:
    """Depth events in file order (the snapshot line where the recorder received it) and book tickers by u."""
    events: list[Event] = []
    tickers: dict[int, Ticker] = {}
    with gzip.open(FIXTURES / RECORDINGS[symbol], "rt") as f:
        for line in f:
            recv, frame = line.split(" ", 1)
            if frame.startswith('{"lastUpdateId"'):
                events.append(snapshot_from_msg(DepthSnapshotMsg.model_validate_json(frame), symbol))
                continue
            wrapped = json.loads(frame)
            if wrapped["stream"].endswith("@depth@100ms"):
                events.append(diff_from_msg(DepthUpdateMsg.model_validate(wrapped["data"]), int(recv)))
            elif wrapped["stream"].endswith("@bookTicker"):
                t = BookTickerMsg.model_validate(wrapped["data"])
                tickers[t.u] = (t.b, t.B, t.a, t.A)
    return events, tickers


def feed(sync: BookSync, event: Event) -> Action:
    return sync.on_snapshot(event) if isinstance(event, DepthSnapshot) else sync.on_diff(event)


def check(sync: BookSync, event: Event, tickers: dict[int, Ticker]) -> bool | None:
    """None: no book ticker for this state; else whether the book's top equals it."""
    if not isinstance(event, DepthDiff) or sync.stale or event.final_id not in tickers:
        return None
    bid, ask = sync.book.best_bid(), sync.book.best_ask()
    assert bid is not None and ask is not None
    return (bid[0], bid[1], ask[0], ask[1]) == tickers[event.final_id]


@pytest.mark.parametrize("symbol", sorted(RECORDINGS))
def test_book_equals_every_book_ticker_of_the_same_update_id(symbol):
    events, tickers = recording(symbol)
    sync = BookSync(symbol)
    actions: dict[Action, int] = {}
    matches, mismatches = 0, []
    for event in events:
        action = feed(sync, event)
        actions[action] = actions.get(action, 0) + 1
        ok = check(sync, event, tickers)
        if ok is not None:
            matches += ok
            if not ok:
                mismatches.append((event, sync.book.best_bid(), sync.book.best_ask()))
        assert not sync.book.crossed()
    print(f"{symbol}: {matches} book-ticker matches, {len(mismatches)} mismatches")
    assert mismatches == []
    assert matches == EXPECTED_MATCHES[symbol]
    # diffs before the recorder's snapshot were buffered, then the snapshot joined them; no break anywhere
    assert actions[Action.NEED_SNAPSHOT] == 1 and actions[Action.SYNCED] == 1 and Action.RESYNC not in actions
    assert sync.counts["gaps"] == 0 and sync.gaps == [] and not sync.stale
    assert sync.book.last_update_id == max(e.final_id for e in events if isinstance(e, DepthDiff))


@pytest.mark.parametrize("symbol", sorted(RECORDINGS))
def test_withheld_diff_is_a_break_and_a_new_snapshot_resynchronises(symbol):
    events, tickers = recording(symbol)
    diffs_at = [i for i, e in enumerate(events) if isinstance(e, DepthDiff)]
    k = diffs_at[1_000]  # a diff well after the first sync
    reference, sync = BookSync(symbol), BookSync(symbol)
    old_snapshot = new_snapshot = None
    for i in range(k):
        feed(reference, events[i])
        feed(sync, events[i])
        if i == diffs_at[995]:
            old_snapshot = reference.book.to_snapshot()
    good_id = sync.book.last_update_id
    good_top = sync.book.top(20)

    feed(reference, events[k])  # the sync under test never sees diff k
    after = events[k + 1 : diffs_at[1_010]]
    first_after = next(e for e in after if isinstance(e, DepthDiff))
    actions = []
    for event in after:
        feed(reference, event)
        actions.append(feed(sync, event))
        if event is after[-4]:
            # a correct book's state a few diffs after the break, as a REST depth answer would give it
            new_snapshot = reference.book.to_snapshot()
    diff_actions = [a for a, e in zip(actions, after, strict=True) if isinstance(e, DepthDiff)]
    assert diff_actions[0] == Action.RESYNC and set(diff_actions[1:]) == {Action.BUFFERED}
    assert sync.stale and sync.counts["gaps"] == 1
    gap = sync.gaps[0]
    assert (gap.book_update_id, gap.first_id, gap.final_id) == (good_id, first_after.first_id, first_after.final_id)
    assert sync.book.last_update_id == good_id and sync.book.top(20) == good_top  # frozen at its last good state

    assert old_snapshot is not None and new_snapshot is not None
    assert sync.on_snapshot(old_snapshot) == Action.NEED_SNAPSHOT  # older than the diffs held: a newer one is needed
    assert sync.stale and sync.counts["stale_snapshots"] == 1
    assert sync.on_snapshot(new_snapshot) == Action.SYNCED
    assert not sync.stale and sync.book.last_update_id == reference.book.last_update_id
    assert sync.book.top(None) == reference.book.top(None)

    matches = 0
    for event in events[diffs_at[1_010] :]:
        feed(reference, event)
        assert feed(sync, event) == Action.APPLIED
        ok = check(sync, event, tickers)
        assert ok is not False, f"mismatch after resync at u={event.final_id}"
        matches += bool(ok)
    print(f"{symbol}: {matches} book-ticker matches after the resync")
    assert matches > 100
    assert sync.book.top(None) == reference.book.top(None) and sync.counts["gaps"] == 1
