"""The DuckDB file's only owner: candles, the trade ids merged into them (exactly-once), reads for the API.

Writes come from one thread (the candle consumer) under a lock; reads use their own cursors, so the API
never blocks a batch for long and never opens the file from another process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from worker import trade_runs
from worker.candles import ALL_INTERVALS, CANDLE_COLUMNS, STORED_INTERVALS, partial_candles, vwap_text
from worker.trade_runs import Change, Runs

SCHEMA = """
-- The trade ids merged into the candles, per symbol, as runs of consecutive ids (worker/trade_runs.py):
-- the de-duplication of exactly-once, written in the same transaction as the candles.
CREATE TABLE IF NOT EXISTS trade_runs (
    symbol VARCHAR NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    newest_ms BIGINT NOT NULL  -- the newest trade time in the run (pruning, the kline check)
);
CREATE TABLE IF NOT EXISTS candles (
    symbol VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    open_time BIGINT NOT NULL,
    open DECIMAL(38, 8) NOT NULL,
    high DECIMAL(38, 8) NOT NULL,
    low DECIMAL(38, 8) NOT NULL,
    close DECIMAL(38, 8) NOT NULL,
    volume DECIMAL(38, 8) NOT NULL,
    -- NULL only for imported candles whose file did not know them (never 0: that would claim no trades)
    quote_volume DECIMAL(38, 16),
    trades BIGINT,
    taker_buy_volume DECIMAL(38, 8),
    taker_buy_quote_volume DECIMAL(38, 16),
    first_trade_id BIGINT,
    last_trade_id BIGINT,
    close_time BIGINT NOT NULL,
    source VARCHAR NOT NULL DEFAULT 'live',
    PRIMARY KEY (symbol, interval, open_time)
);
"""

# Merge a partial candle into the stored one: associative, so batch boundaries never matter.
_UPSERT = f"""
INSERT INTO candles ({", ".join(CANDLE_COLUMNS)}, source)
SELECT {", ".join(CANDLE_COLUMNS)}, 'live' FROM partials
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    open = CASE WHEN excluded.first_trade_id < candles.first_trade_id THEN excluded.open ELSE candles.open END,
    high = greatest(candles.high, excluded.high),
    low = least(candles.low, excluded.low),
    close = CASE WHEN excluded.last_trade_id > candles.last_trade_id THEN excluded.close ELSE candles.close END,
    volume = candles.volume + excluded.volume,
    quote_volume = candles.quote_volume + excluded.quote_volume,
    trades = candles.trades + excluded.trades,
    taker_buy_volume = candles.taker_buy_volume + excluded.taker_buy_volume,
    taker_buy_quote_volume = candles.taker_buy_quote_volume + excluded.taker_buy_quote_volume,
    first_trade_id = least(candles.first_trade_id, excluded.first_trade_id),
    last_trade_id = greatest(candles.last_trade_id, excluded.last_trade_id)
-- A closed candle from Binance's REST klines (or a user import) is already complete: live trades of the
-- same interval are in it, so they must not be added again.
WHERE candles.source = 'live'
RETURNING *
"""

_OUT = """
    open_time,
    CAST(open AS VARCHAR) AS open, CAST(high AS VARCHAR) AS high, CAST(low AS VARCHAR) AS low,
    CAST(close AS VARCHAR) AS close, CAST(volume AS VARCHAR) AS volume,
    CAST(CAST(round(quote_volume, 8) AS DECIMAL(38, 8)) AS VARCHAR) AS quote_volume,
    trades,
    CAST(taker_buy_volume AS VARCHAR) AS taker_buy_volume,
    CAST(CAST(round(taker_buy_quote_volume, 8) AS DECIMAL(38, 8)) AS VARCHAR) AS taker_buy_quote_volume,
    quote_volume AS _quote_exact, volume AS _volume_exact,
    close_time, source
"""

OUTPUT_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume",
    "taker_buy_quote_volume", "vwap", "close_time", "source",
]


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection) -> Iterator[Callable[[str, pl.DataFrame], None]]:
    """`add(name, frame)` makes a frame visible to SQL by that name until the block ends.

    Explicit, because the store's connection has DuckDB's replacement scan (a Python local found by name) off:
    a renamed variable must fail loudly, not silently read another object of the old name. Open the block
    outside a transaction: DuckDB refuses to unregister inside an aborted one, which would hide its error."""
    names: list[str] = []

    def add(name: str, frame: pl.DataFrame) -> None:
        con.register(name, frame)  # a name registered again replaces its frame
        if name not in names:
            names.append(name)

    try:
        yield add
    finally:
        for name in names:
            con.unregister(name)


class CandleStore:
    def __init__(self, path: Path | str) -> None:
        self.path = path
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path), config={"python_enable_replacements": False})
        self.con.execute(SCHEMA)
        _allow_unknown_import_columns(self.con)
        _trades_table_to_runs(self.con)
        self.write_lock = threading.Lock()
        self.seen: dict[str, Runs] = {}  # the committed trade_runs rows, per symbol (only this store writes them)
        self._load_runs()

    def close(self) -> None:
        with self.write_lock:
            self.con.close()

    def _load_runs(self) -> None:
        rows = self.con.sql("SELECT symbol, first_id, last_id, newest_ms FROM trade_runs "
                            "ORDER BY symbol, first_id").pl()
        self.seen = {
            str(sym): Runs(part["first_id"].to_numpy(), part["last_id"].to_numpy(), part["newest_ms"].to_numpy())
            for (sym,), part in rows.group_by("symbol", maintain_order=True)
        }

    def apply_trades(self, trades: pl.DataFrame) -> pl.DataFrame:
        """Merge the candles of the trades not merged before (by (symbol, trade_id)); returns the candle rows touched.

        Partials are built from only the trades that are really new, so a redelivered batch changes nothing.
        One transaction: the candles and the trade ids they now hold are stored together or not at all.
        """
        batch = trades.unique(subset=["symbol", "trade_id"], keep="first").sort("symbol", "trade_id")
        with self.write_lock:
            new, changes = _new_trades(batch, self.seen)
            if new.is_empty():
                return pl.DataFrame()
            try:
                merged = self._commit(partial_candles(new), changes)
            except BaseException:
                self._load_runs()  # whatever the failure left, the runs in memory are the committed ones
                raise
            for sym, change in changes.items():
                self.seen[sym] = change.after
        return merged

    def _commit(self, partials: pl.DataFrame, changes: dict[str, Change]) -> pl.DataFrame:
        removed = pl.DataFrame(
            {"symbol": [s for s, c in changes.items() for _ in range(len(c.removed_first))],
             "first_id": np.concatenate([c.removed_first for c in changes.values()])},
            schema={"symbol": pl.String, "first_id": pl.Int64})
        added = pl.DataFrame(
            {"symbol": [s for s, c in changes.items() for _ in range(len(c.added))],
             "first_id": np.concatenate([c.added.first for c in changes.values()]),
             "last_id": np.concatenate([c.added.last for c in changes.values()]),
             "newest_ms": np.concatenate([c.added.newest_ms for c in changes.values()])},
            schema={"symbol": pl.String, "first_id": pl.Int64, "last_id": pl.Int64, "newest_ms": pl.Int64})
        con = self.con
        with registered(con) as frame:
            frame("partials", partials)
            frame("runs_removed", removed)
            frame("runs_added", added)
            con.execute("BEGIN TRANSACTION")
            try:
                merged = con.sql(_UPSERT).pl()
                if len(removed):
                    con.execute("DELETE FROM trade_runs t USING runs_removed r "
                                "WHERE t.symbol = r.symbol AND t.first_id = r.first_id")
                con.execute("INSERT INTO trade_runs SELECT symbol, first_id, last_id, newest_ms FROM runs_added")
                con.execute("COMMIT")
            except BaseException:
                # a COMMIT that failed (disk full) has already ended the transaction: keep its error, not ROLLBACK's
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        return merged

    def import_candles(self, symbol: str, interval: str, frame: pl.DataFrame) -> tuple[int, int]:
        """Add user candles (source 'import'); never overwrite a stored candle. Returns (imported, skipped).

        `frame` is checked already (qs_common.ohlc.validate: on the grid, no time twice, sane values);
        optional columns may be null.
        """
        with self.write_lock, registered(self.con) as add:
            add("rows", _import_frame(symbol, interval, frame))
            inserted = self.con.execute(
                "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, quote_volume, "
                "trades, taker_buy_volume, taker_buy_quote_volume, close_time, source) "
                "SELECT *, 'import' FROM rows ON CONFLICT DO NOTHING RETURNING open_time"
            ).fetchall()
        return len(inserted), len(frame) - len(inserted)

    def prune_trades(self, retention_ms: int) -> int:
        """Forget trade ids whose runs end more than `retention_ms` before each symbol's newest trade (they only
        serve de-duplication); returns how many ids were forgotten. A run is kept whole while any of it is recent."""
        with self.write_lock:
            pruned = {sym: trade_runs.prune(runs, retention_ms) for sym, runs in self.seen.items()}
            forgotten = sum(self.seen[s].ids() - r.ids() for s, r in pruned.items())
            if forgotten:
                self.con.execute(
                    "DELETE FROM trade_runs t USING "
                    "(SELECT symbol, max(newest_ms) AS newest FROM trade_runs GROUP BY symbol) m "
                    "WHERE t.symbol = m.symbol AND t.newest_ms < m.newest - ?",
                    [retention_ms],
                )
                self.seen = pruned
        return forgotten

    def newest_trade_ms(self, since_ms: int | None = None) -> dict[str, int]:
        """Each symbol's newest merged trade time, among symbols with a trade from `since_ms` on."""
        cur = self.con.cursor()
        try:
            rows = cur.execute("SELECT symbol, max(newest_ms) FROM trade_runs WHERE newest_ms >= ? GROUP BY symbol",
                               [since_ms if since_ms is not None else -(2**63)]).fetchall()
        finally:
            cur.close()
        return {str(s): int(t) for s, t in rows}

    def candles(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int,
    ) -> pl.DataFrame:
        """Candles with open_time in [start_ms, end_ms], oldest first, decimals as exact text."""
        if interval not in ALL_INTERVALS:
            raise ValueError(f"unknown interval {interval!r}")
        lo = start_ms if start_ms is not None else -(2**62)
        hi = end_ms if end_ms is not None else 2**62
        cur = self.con.cursor()
        try:
            if interval in STORED_INTERVALS:
                base = "SELECT * FROM candles WHERE symbol = $sym AND interval = $iv"
                params: dict[str, object] = {"sym": symbol, "iv": interval}
            else:
                base = _derived_sql(ALL_INTERVALS[interval])
                params = {"sym": symbol}  # $lo and $hi are set below for both kinds
            sql = (
                f"SELECT {_OUT} FROM ({base}) c WHERE open_time BETWEEN $lo AND $hi "
                "ORDER BY open_time DESC LIMIT $limit"
            )
            params.update(lo=lo, hi=hi, limit=limit)
            df = cur.sql(sql, params=params).pl()
        finally:
            cur.close()
        # VWAP in Python, by worker.candles.vwap_text: DuckDB divides decimals in floating point
        exact = zip(df["_quote_exact"].to_list(), df["_volume_exact"].to_list(), strict=True)
        vwap = [vwap_text(q, v) for q, v in exact]
        return df.with_columns(pl.Series("vwap", vwap, dtype=pl.String)).select(OUTPUT_COLUMNS).sort("open_time")

    def symbols(self) -> list[dict[str, object]]:
        cur = self.con.cursor()
        try:
            rows = cur.execute(
                "SELECT symbol, interval, count(*), min(open_time), max(open_time) FROM candles "
                "GROUP BY symbol, interval ORDER BY symbol, interval"
            ).fetchall()
        finally:
            cur.close()
        return [
            {"symbol": s, "interval": i, "count": n, "first_open_time": lo, "last_open_time": hi}
            for s, i, n, lo, hi in rows
        ]

    def ping(self) -> bool:
        cur = self.con.cursor()
        try:
            return cur.execute("SELECT 1").fetchone() == (1,)
        finally:
            cur.close()


def _new_trades(batch: pl.DataFrame, seen: dict[str, Runs]) -> tuple[pl.DataFrame, dict[str, Change]]:
    """The rows of `batch` (sorted by symbol, trade id; unique) whose ids no run holds, and per symbol the runs'
    change once they are merged."""
    ids = batch["trade_id"].to_numpy()
    times = batch["trade_time_ms"].to_numpy()
    keep = np.zeros(len(batch), np.bool_)
    changes: dict[str, Change] = {}
    at = 0
    for n, sym in batch["symbol"].rle().struct.unnest().rows():
        part = slice(at, at + n)
        runs = seen.get(sym, Runs.empty())
        fresh = trade_runs.unseen(runs, ids[part])
        keep[part] = fresh
        if fresh.any():
            changes[sym] = trade_runs.add(runs, ids[part][fresh], times[part][fresh])
        at += n
    return (batch if keep.all() else batch.filter(keep)), changes


def _trades_table_to_runs(con: duckdb.DuckDBPyConnection) -> None:
    """A file from before the runs has a table of every trade: turn it into runs once (same ids), then drop it."""
    if not con.execute("SELECT table_name FROM information_schema.tables WHERE table_name = 'trades'").fetchall():
        return
    con.execute("BEGIN TRANSACTION")
    con.execute(
        "INSERT INTO trade_runs SELECT symbol, min(trade_id), max(trade_id), max(trade_time_ms) FROM "
        "(SELECT symbol, trade_id, trade_time_ms, "
        "trade_id - row_number() OVER (PARTITION BY symbol ORDER BY trade_id) AS island FROM trades) "
        "GROUP BY symbol, island"
    )
    con.execute("DROP TABLE trades")
    con.execute("COMMIT")


def _derived_sql(ms: int) -> str:
    """Longer candles from stored ones: per 5-minute slot the 5m candle, or the slot's 1m candles where no
    5m candle is stored (an import of 1m only), so a derived candle always covers everything stored.

    A sum with an unknown part (NULL, from an import that lacked the column) is unknown, not a partial sum.
    $lo/$hi bound the stored rows read (the caller filters the derived open times exactly).
    """
    def total(col: str) -> str:
        return f"CASE WHEN count({col}) = count(*) THEN sum({col}) END"

    base = "'5m'" if ms % 300_000 == 0 else "NULL"
    return f"""
        WITH stored AS (
            SELECT * FROM candles
            WHERE symbol = $sym AND interval IN ('1m', '5m') AND open_time BETWEEN $lo - {ms} AND $hi + {ms}
        ), slots AS (SELECT DISTINCT open_time FROM stored WHERE interval = {base})
        SELECT symbol, '{ms}' AS interval, (open_time // {ms}) * {ms} AS open_time,
            arg_min(open, open_time) AS open, max(high) AS high, min(low) AS low,
            arg_max(close, open_time) AS close, sum(volume) AS volume, {total("quote_volume")} AS quote_volume,
            CAST({total("trades")} AS BIGINT) AS trades, {total("taker_buy_volume")} AS taker_buy_volume,
            {total("taker_buy_quote_volume")} AS taker_buy_quote_volume,
            min(first_trade_id) AS first_trade_id, max(last_trade_id) AS last_trade_id,
            (open_time // {ms}) * {ms} + {ms - 1} AS close_time,
            CASE WHEN bool_and(source = 'live') THEN 'live' WHEN bool_and(source = 'rest') THEN 'rest'
                 ELSE 'mixed' END AS source
        FROM stored
        WHERE interval = {base}
           OR (interval = '1m' AND (open_time // 300000) * 300000 NOT IN (SELECT open_time FROM slots))
        GROUP BY symbol, (open_time // {ms})
    """


def _import_frame(symbol: str, interval: str, frame: pl.DataFrame) -> pl.DataFrame:
    ms = STORED_INTERVALS[interval]

    def optional(name: str, dtype: pl.DataType) -> pl.Expr:
        # unknown stays unknown (NULL), never 0
        return (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)

    return frame.select(
        pl.lit(symbol).alias("symbol"), pl.lit(interval).alias("interval"), "open_time",
        "open", "high", "low", "close", "volume",
        optional("quote_volume", pl.Decimal(38, 16)), optional("trades", pl.Int64()),
        optional("taker_buy_volume", pl.Decimal(38, 8)), optional("taker_buy_quote_volume", pl.Decimal(38, 16)),
        (pl.col("open_time") + ms - 1).alias("close_time"),
    )


def _allow_unknown_import_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Files made before imports could leave columns unknown have them NOT NULL: relax that once."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'candles' AND is_nullable = 'NO' "
        "AND column_name IN ('quote_volume', 'trades', 'taker_buy_volume', 'taker_buy_quote_volume')"
    ).fetchall()
    for (name,) in rows:
        con.execute(f"ALTER TABLE candles ALTER COLUMN {name} DROP NOT NULL")
