"""REST candles into the candle store, reconciled with live ones, and the durable list of backfill jobs.

Uses the `CandleStore`'s connection and write lock (one DuckDB file, one owner process). A REST candle is
closed and complete, so it is inserted where nothing is stored and replaces a live candle only when the
live one has fewer trades (it was built from part of the interval: the last before a disconnect or the
first after one). Otherwise the live candle stays, and whether the two agreed is recorded in
`candle_sources`: outcome `agreed`, `replaced` or `differed`, with the `reason` (the backfill job's origin,
`kline-check` or `verify`) and the fields that `differed`. Import and REST rows are never touched.

In repair mode (the kline check) the kline is the authority: every live candle that differs from it in
any field is replaced. The check itself inserts nothing (`insert=False`): a minute with no candle is a
hole, which the hole scan repairs together with the partial minutes on each side of it. The live trades
of a replaced candle stay in `trades`: they only serve de-duplication, and the candle, now `rest`, takes no
more live trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from worker.backfill.klines import REST_COLUMNS
from worker.backfill.plan import Job
from worker.store import CandleStore, registered

SCHEMA = """
CREATE TABLE IF NOT EXISTS candle_sources (
    symbol VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    open_time BIGINT NOT NULL,
    live_trades BIGINT NOT NULL,
    rest_trades BIGINT NOT NULL,
    outcome VARCHAR NOT NULL,
    checked_ms BIGINT NOT NULL,
    PRIMARY KEY (symbol, interval, open_time)
);
CREATE TABLE IF NOT EXISTS backfill_jobs (
    symbol VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    cursor_ms BIGINT NOT NULL,
    origin VARCHAR NOT NULL,
    PRIMARY KEY (symbol, interval, start_ms, end_ms)
);
-- files written before the kline check have neither column
ALTER TABLE candle_sources ADD COLUMN IF NOT EXISTS reason VARCHAR DEFAULT 'backfill';
ALTER TABLE candle_sources ADD COLUMN IF NOT EXISTS differed VARCHAR DEFAULT '';
-- the kline check's progress: the newest 1m open time of each symbol already compared with its kline
CREATE TABLE IF NOT EXISTS kline_check_progress (
    symbol VARCHAR PRIMARY KEY,
    checked_through_ms BIGINT NOT NULL
);
"""

# The fields compared, in the order a difference is reported. Live quote volumes keep 16 places (every p*q
# exact); Binance rounds them to 8.
COMPARED = ("trades", "volume", "quote_volume", "open", "high", "low", "close", "taker_buy_volume",
            "taker_buy_quote_volume")
_ROUNDED = {"quote_volume", "taker_buy_quote_volume"}


def _differs(live: str, rest: str, name: str) -> str:
    left = f"round({live}.{name}, 8)" if name in _ROUNDED else f"{live}.{name}"
    return f"{left} <> {rest}.{name}"


def _equal(live: str, rest: str) -> str:
    return " AND ".join(f"NOT ({_differs(live, rest, n)})" for n in COMPARED)


def _differed(live: str, rest: str) -> str:
    cases = ", ".join(f"CASE WHEN {_differs(live, rest, n)} THEN '{n}' END" for n in COMPARED)
    return f"concat_ws(',', {cases})"

_COMPARE = f"""
SELECT r.symbol, r.interval, r.open_time, c.trades AS live_trades, r.trades AS rest_trades,
    CASE WHEN {_equal("c", "r")} THEN 'agreed'
         WHEN $repair OR c.trades < r.trades THEN 'replaced'
         ELSE 'differed' END AS outcome,
    $now AS checked_ms, $reason AS reason, {_differed("c", "r")} AS differed
FROM rest r JOIN candles c USING (symbol, interval, open_time)
WHERE c.source = 'live'
"""
_SOURCES_COLUMNS = "symbol, interval, open_time, live_trades, rest_trades, outcome, checked_ms, reason, differed"
_RECORD = f"""
INSERT INTO candle_sources ({_SOURCES_COLUMNS}) SELECT {_SOURCES_COLUMNS} FROM cmp
ON CONFLICT DO UPDATE SET live_trades = excluded.live_trades, rest_trades = excluded.rest_trades,
    outcome = excluded.outcome, checked_ms = excluded.checked_ms, reason = excluded.reason,
    differed = excluded.differed
"""
_STORED_ONLY = "SELECT r.* FROM rest r SEMI JOIN candles c USING (symbol, interval, open_time)"

_SET = ", ".join(f"{c} = excluded.{c}" for c in REST_COLUMNS[3:])


def _upsert(repair: bool) -> str:
    replace = f"NOT ({_equal('candles', 'excluded')})" if repair else "candles.trades < excluded.trades"
    return f"""
INSERT INTO candles ({", ".join(REST_COLUMNS)}, first_trade_id, last_trade_id, source)
SELECT {", ".join(REST_COLUMNS)}, NULL::BIGINT, NULL::BIGINT, 'rest' FROM rest
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET {_SET},
    first_trade_id = NULL, last_trade_id = NULL, source = 'rest'
WHERE candles.source = 'live' AND {replace}
RETURNING open_time
"""


@dataclass
class WriteResult:
    inserted: int = 0
    replaced: int = 0
    agreed: int = 0
    differed: int = 0
    # candle_sources rows of the live candles that did not agree (replaced or differed), oldest first
    changes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.agreed += other.agreed
        self.differed += other.differed


class RestCandleStore:
    def __init__(self, store: CandleStore) -> None:
        self.store = store
        with store.write_lock:
            store.con.execute(SCHEMA)

    def write(self, rest: pl.DataFrame, now_ms: int, reason: str = "backfill", repair: bool = False,
              insert: bool = True) -> WriteResult:
        """Store closed REST candles (`REST_COLUMNS`) in one transaction; reconcile with live ones.

        `repair`: the klines are the authority: replace every live candle that differs from its kline.
        `insert`: also store the klines where no candle is stored.
        """
        if rest.is_empty():
            return WriteResult()
        con = self.store.con
        with self.store.write_lock, registered(con) as frame:
            frame("rest", rest)
            con.execute("BEGIN TRANSACTION")
            try:
                params = {"now": now_ms, "reason": reason, "repair": repair}
                cmp = con.sql(_COMPARE, params=params).pl()
                frame("cmp", cmp)
                con.execute(_RECORD)
                if not insert:
                    frame("rest", con.sql(_STORED_ONLY).pl())  # the same name again: replaces the view
                written = len(con.sql(_upsert(repair)).fetchall())
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        counts = dict(cmp.group_by("outcome").len().iter_rows()) if not cmp.is_empty() else {}
        replaced = int(counts.get("replaced", 0))
        changes = cmp.filter(pl.col("outcome") != "agreed").sort("open_time").to_dicts()
        return WriteResult(written - replaced, replaced, int(counts.get("agreed", 0)),
                           int(counts.get("differed", 0)), changes)

    def _read(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        cur = self.store.con.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def last_open_times(self) -> dict[tuple[str, str], int]:
        rows = self._read("SELECT symbol, interval, max(open_time) FROM candles GROUP BY symbol, interval")
        return {(str(s), str(i)): int(t) for s, i, t in rows}

    def newest_trade_ms(self) -> int | None:
        return max(self.store.newest_trade_ms().values(), default=None)

    def open_times(self, symbol: str, interval: str, since_ms: int) -> list[int]:
        rows = self._read(
            "SELECT open_time FROM candles WHERE symbol = ? AND interval = ? AND open_time >= ? ORDER BY open_time",
            [symbol, interval, since_ms],
        )
        return [int(r[0]) for r in rows]

    def reconcile_counts(self) -> dict[str, int]:
        rows = self._read("SELECT outcome, count(*) FROM candle_sources GROUP BY outcome")
        return {str(o): int(n) for o, n in rows}

    # -- the kline check ------------------------------------------------------------------------------
    def newest_trade_by_symbol(self, since_ms: int | None = None) -> dict[str, int]:
        """Each symbol's newest stored trade time (the candle consumer has applied everything before it),
        among trades from `since_ms` on."""
        return self.store.newest_trade_ms(since_ms)

    def first_live_open(self, symbol: str, interval: str, since_ms: int) -> int | None:
        rows = self._read("SELECT min(open_time) FROM candles WHERE symbol = ? AND interval = ? AND source = 'live' "
                          "AND open_time >= ?", [symbol, interval, since_ms])
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def live_count(self, symbol: str, interval: str, first_ms: int, last_ms: int) -> int:
        rows = self._read("SELECT count(*) FROM candles WHERE symbol = ? AND interval = ? AND source = 'live' "
                          "AND open_time BETWEEN ? AND ?", [symbol, interval, first_ms, last_ms])
        return int(rows[0][0]) if rows else 0

    def check_progress(self) -> dict[str, int]:
        rows = self._read("SELECT symbol, checked_through_ms FROM kline_check_progress")
        return {str(s): int(t) for s, t in rows}

    def save_check_progress(self, symbol: str, checked_through_ms: int) -> None:
        with self.store.write_lock:
            self.store.con.execute(
                "INSERT INTO kline_check_progress VALUES (?, ?) ON CONFLICT DO UPDATE SET "
                "checked_through_ms = greatest(kline_check_progress.checked_through_ms, excluded.checked_through_ms)",
                [symbol, checked_through_ms],
            )

    # The job list survives restarts: a job still waiting for its last candles to close is resumed.
    def save_job(self, job: Job) -> bool:
        """Persist a new job; False when the same job is already stored."""
        with self.store.write_lock:
            rows = self.store.con.execute(
                "INSERT INTO backfill_jobs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
                [job.symbol, job.interval, job.start_ms, job.end_ms, job.cursor_ms, job.origin],
            ).fetchall()
        return bool(rows)

    def update_job(self, job: Job) -> None:
        with self.store.write_lock:
            if job.done:
                self.store.con.execute(
                    "DELETE FROM backfill_jobs WHERE symbol = ? AND interval = ? AND start_ms = ? AND end_ms = ?",
                    list(job.key),
                )
            else:
                self.store.con.execute(
                    "UPDATE backfill_jobs SET cursor_ms = ? "
                    "WHERE symbol = ? AND interval = ? AND start_ms = ? AND end_ms = ?",
                    [job.cursor_ms, *job.key],
                )

    def load_jobs(self) -> list[Job]:
        rows = self._read("SELECT symbol, interval, start_ms, end_ms, origin, cursor_ms FROM backfill_jobs "
                          "ORDER BY start_ms")
        return [Job(str(s), str(i), int(a), int(b), str(o), int(c)) for s, i, a, b, o, c in rows]
