"""Book metrics as symbol statistics: every field the book role publishes is a metric an alert rule may watch
(prefixed `book_`), and a stale book gives none."""

from __future__ import annotations

import json

from qs_analytics.alerts import AlertEvaluator, AlertRule
from qs_analytics.book.metrics import book_metrics
from qs_analytics.names import SYMBOL_METRIC_NAMES
from tests.unit.test_dashboard_orderbook import real_book
from worker.book_service import COST_NOTIONALS, book_stats


def published(stale: bool = False) -> str:
    sync = real_book("BTCUSDT")
    return json.dumps({"symbol": "BTCUSDT", "last_update_id": sync.book.last_update_id, "event_time": 1,
                       "stale": stale, **book_metrics(sync.book, COST_NOTIONALS)})


def test_every_published_metric_is_an_alert_metric():
    stats = book_stats(published())
    assert len(stats) >= 20 and "book_spread_bps" in stats and "book_last_update_id" not in stats
    assert set(stats) <= set(SYMBOL_METRIC_NAMES)


def test_stale_or_broken_books_give_no_metrics():
    assert book_stats(published(stale=True)) == {}
    assert book_stats(None) == book_stats(b"not json") == book_stats(b"[1]") == {}


def test_a_symbol_rule_fires_on_a_book_metric():
    stats = book_stats(published())
    ev = AlertEvaluator([AlertRule.from_expression("s", "book_imbalance_5 > -2", symbol="BTCUSDT")])
    fired = ev.evaluate_symbol("BTCUSDT", 1, stats)
    assert [a.stream_fields()["metric"] for a in fired] == ["book_imbalance_5"]
