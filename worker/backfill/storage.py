"""REST candles into the candle store, reconciled with live ones, and the durable list of backfill jobs.

Uses the `CandleStore`'s connection and write lock (one DuckDB file, one owner process). A REST candle is
closed and complete, so it is inserted where nothing is stored and replaces a live candle only when the
live one has fewer trades (it was built from part of the interval: the last before a disconnect or the
first after one). Otherwise the live candle stays, and whether the two agreed is recorded in
`candle_sources`: outcome `agreed`, `replaced` or `differed`. Import and REST rows are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from worker.backfill.klines import REST_COLUMNS
from worker.backfill.plan import Job
from worker.store import CandleStore

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
"""

_COMPARE = """
SELECT r.symbol, r.interval, r.open_time, c.trades AS live_trades, r.trades AS rest_trades,
    CASE WHEN c.trades < r.trades THEN 'replaced'
         WHEN c.open = r.open AND c.high = r.high AND c.low = r.low AND c.close = r.close
              AND c.volume = r.volume AND c.trades = r.trades AND c.taker_buy_volume = r.taker_buy_volume
              AND round(c.quote_volume, 8) = r.quote_volume
              AND round(c.taker_buy_quote_volume, 8) = r.taker_buy_quote_volume THEN 'agreed'
         ELSE 'differed' END AS outcome,
    $now AS checked_ms
FROM rest r JOIN candles c USING (symbol, interval, open_time)
WHERE c.source = 'live'
"""

_SET = ", ".join(f"{c} = excluded.{c}" for c in REST_COLUMNS[3:])
_UPSERT = f"""
INSERT INTO candles ({", ".join(REST_COLUMNS)}, first_trade_id, last_trade_id, source)
SELECT {", ".join(REST_COLUMNS)}, NULL::BIGINT, NULL::BIGINT, 'rest' FROM rest
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET {_SET},
    first_trade_id = NULL, last_trade_id = NULL, source = 'rest'
WHERE candles.source = 'live' AND candles.trades < excluded.trades
RETURNING open_time
"""


@dataclass
class WriteResult:
    inserted: int = 0
    replaced: int = 0
    agreed: int = 0
    differed: int = 0


class RestCandleStore:
    def __init__(self, store: CandleStore) -> None:
        self.store = store
        with store.write_lock:
            store.con.execute(SCHEMA)

    def write(self, rest: pl.DataFrame, now_ms: int) -> WriteResult:
        """Store closed REST candles (`REST_COLUMNS`) in one transaction; reconcile with live ones."""
        if rest.is_empty():
            return WriteResult()
        con = self.store.con
        with self.store.write_lock:
            con.execute("BEGIN TRANSACTION")
            try:
                cmp = con.sql(_COMPARE, params={"now": now_ms}).pl()  # noqa: F841 (used by SQL)
                con.execute(
                    "INSERT INTO candle_sources SELECT * FROM cmp ON CONFLICT DO UPDATE SET "
                    "live_trades = excluded.live_trades, rest_trades = excluded.rest_trades, "
                    "outcome = excluded.outcome, checked_ms = excluded.checked_ms"
                )
                written = len(con.sql(_UPSERT).fetchall())
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        counts = dict(cmp.group_by("outcome").len().iter_rows()) if not cmp.is_empty() else {}
        replaced = int(counts.get("replaced", 0))
        return WriteResult(written - replaced, replaced, int(counts.get("agreed", 0)), int(counts.get("differed", 0)))

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
        row = self._read("SELECT max(trade_time_ms) FROM trades")
        return int(row[0][0]) if row and row[0][0] is not None else None

    def open_times(self, symbol: str, interval: str, since_ms: int) -> list[int]:
        rows = self._read(
            "SELECT open_time FROM candles WHERE symbol = ? AND interval = ? AND open_time >= ? ORDER BY open_time",
            [symbol, interval, since_ms],
        )
        return [int(r[0]) for r in rows]

    def reconcile_counts(self) -> dict[str, int]:
        rows = self._read("SELECT outcome, count(*) FROM candle_sources GROUP BY outcome")
        return {str(o): int(n) for o, n in rows}

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
