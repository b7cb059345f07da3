"""The Order book page and the live pair page's entry cost under Streamlit's AppTest, against a real redis-server
holding what the worker's book role writes: the real books of the recordings (tests/unit/test_book_realdata.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from dashboard.safe import md
from qs_analytics.book.metrics import book_metrics, market_cost_bps
from qs_analytics.book.sync import BookSync
from qs_common import keys
from tests.integration.browser_util import WorkerApi
from tests.unit.test_book_realdata import recording
from tests.unit.test_dashboard_app import run_page, services, texts, values
from worker.book_service import book_json

__all__ = ["services"]  # the module-scoped fixture: a real redis-server and worker API
LEVELS = 50


def real_book(symbol: str, n_events: int = 2_000) -> BookSync:
    sync = BookSync(symbol)
    for event in recording(symbol)[0][:n_events]:
        sync.on_snapshot(event) if hasattr(event, "last_update_id") else sync.on_diff(event)  # type: ignore[arg-type]
    assert not sync.stale
    return sync


@pytest.fixture
def books(services: tuple[redis.Redis, WorkerApi]) -> Iterator[dict[str, BookSync]]:
    r, _ = services
    syncs = {s: real_book(s) for s in ("BTCUSDT", "ETHUSDT")}
    for s, sync in syncs.items():
        r.set(keys.book_depth_key(s), json.dumps(book_json(sync, LEVELS)))
        r.set(keys.book_metrics_key(s), json.dumps({"symbol": s, "stale": False,
                                                     **book_metrics(sync.book, (10_000, 100_000))}))
    yield syncs
    for s in syncs:
        r.delete(keys.book_depth_key(s), keys.book_metrics_key(s))


def test_order_book_page_draws_both_books(books: dict[str, BookSync]) -> None:
    at = run_page("order_book.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    for chart, sym in zip(charts, ("ETHUSDT", "BTCUSDT"), strict=True):
        fig = json.loads(chart.proto.spec)
        bids, asks = books[sym].book.top(LEVELS)
        bid_trace, ask_trace = fig["data"]
        assert values(bid_trace["x"]) == [float(p) for p, _ in bids]
        assert values(ask_trace["x"]) == [float(p) for p, _ in asks]
        cum = values(ask_trace["y"])
        assert cum[-1] == pytest.approx(sum(float(q) for _, q in asks))
        assert all(b >= a for a, b in zip(cum, cum[1:], strict=False))  # cumulative
    tables = [d.value for d in at.dataframe]
    level_tables = [t for t in tables if "bid" in t.columns]
    assert len(level_tables) == 2
    top = books["ETHUSDT"].book.top(10)
    assert list(level_tables[0]["bid"]) == [p for p, _ in top[0]]  # exact text, as Binance sent it
    assert list(level_tables[0]["ask qty"]) == [q for _, q in top[1]]
    metric_tables = [t for t in tables if "metric" in t.columns]
    spread = dict(zip(metric_tables[1]["metric"], metric_tables[1]["value"], strict=True))["spread (bps)"]
    assert spread == book_metrics(books["BTCUSDT"].book)["spread_bps"]


def test_order_book_page_without_books_and_stale(services: tuple[redis.Redis, WorkerApi],
                                                 books: dict[str, BookSync]) -> None:
    r, _ = services
    r.delete(keys.book_depth_key("BTCUSDT"))
    stale = {**book_json(books["ETHUSDT"], LEVELS), "stale": True}
    r.set(keys.book_depth_key("ETHUSDT"), json.dumps(stale))
    at = run_page("order_book.py")
    body = texts(at)
    assert md("No order book for BTCUSDT yet") in body and md("ETHUSDT: the book is stale") in body
    assert len(at.get("plotly_chart")) == 1  # the stale book still shows its last good state


def test_live_pair_entry_cost_walks_both_books(books: dict[str, BookSync]) -> None:
    at = run_page()  # the live pair page, ETHUSDT/BTCUSDT
    table = next(d.value for d in at.dataframe if "entry" in d.value.columns)
    y, x = books["ETHUSDT"].book, books["BTCUSDT"].book
    # the walk over the published levels, which the book role's 50 levels hold at 10,000 per leg
    expect_long = market_cost_bps(y, "buy", 10_000) + market_cost_bps(x, "sell", 10_000)  # type: ignore[operator]
    long_row = table[table["entry"].str.startswith("long")].iloc[0]
    assert long_row["both legs (bps)"] == pytest.approx(expect_long, rel=1e-12)
    assert long_row["Y leg (bps)"] > 0 and long_row["X leg (bps)"] > 0
    at.number_input(key="entry_notional").set_value(1e9).run()  # far deeper than 50 levels: no figure
    table = next(d.value for d in at.dataframe if "entry" in d.value.columns)
    assert table["both legs (bps)"].isna().all()
