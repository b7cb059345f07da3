"""The DuckDB file's only owner: trades (for exactly-once), candles, and reads for the HTTP API.

Writes come from one thread (the candle consumer) under a lock; reads use their own cursors, so the API
never blocks a batch for long and never opens the file from another process.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import polars as pl

from worker.candles import ALL_INTERVALS, CANDLE_COLUMNS, STORED_INTERVALS, partial_candles

SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    symbol VARCHAR NOT NULL,
    trade_id BIGINT NOT NULL,
    price DECIMAL(38, 8) NOT NULL,
    qty DECIMAL(38, 8) NOT NULL,
    trade_time_ms BIGINT NOT NULL,
    buyer_is_maker BOOLEAN NOT NULL,
    PRIMARY KEY (symbol, trade_id)
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
    quote_volume DECIMAL(38, 16) NOT NULL,
    trades BIGINT NOT NULL,
    taker_buy_volume DECIMAL(38, 8) NOT NULL,
    taker_buy_quote_volume DECIMAL(38, 16) NOT NULL,
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
    CASE WHEN volume > 0 THEN CAST(CAST(round(quote_volume / volume, 8) AS DECIMAL(38, 8)) AS VARCHAR) END AS vwap,
    close_time, source
"""

OUTPUT_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume",
    "taker_buy_quote_volume", "vwap", "close_time", "source",
]


class CandleStore:
    def __init__(self, path: Path | str) -> None:
        self.path = path
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path))
        self.con.execute(SCHEMA)
        self.write_lock = threading.Lock()

    def close(self) -> None:
        with self.write_lock:
            self.con.close()

    def apply_trades(self, trades: pl.DataFrame) -> pl.DataFrame:
        """Insert new trades (duplicates by (symbol, trade_id) are dropped) and merge their candles.

        Partials are built from only the trades that were really new, so a redelivered batch changes
        nothing. Returns the merged candle rows touched.
        One transaction: either all of a batch's effects are stored or none.
        """
        batch = trades.unique(subset=["symbol", "trade_id"], keep="first")  # noqa: F841 (used by SQL)
        with self.write_lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                new = con.sql(
                    "INSERT INTO trades SELECT symbol, trade_id, price, qty, trade_time_ms, buyer_is_maker "
                    "FROM batch ON CONFLICT DO NOTHING RETURNING *"
                ).pl()
                partials = partial_candles(new)  # noqa: F841 (used by SQL)
                merged = con.sql(_UPSERT).pl() if len(new) else pl.DataFrame()
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return merged

    def import_candles(self, symbol: str, interval: str, frame: pl.DataFrame) -> tuple[int, int]:
        """Add user candles (source 'import'); never overwrite a stored candle. Returns (imported, skipped)."""
        rows = _import_frame(symbol, interval, frame).unique(subset=["open_time"], keep="first", maintain_order=True)  # noqa: F841 (used by SQL)
        with self.write_lock:
            before = self.con.execute("SELECT count(*) FROM candles").fetchone()
            self.con.execute(
                "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, quote_volume, "
                "trades, taker_buy_volume, taker_buy_quote_volume, close_time, source) "
                "SELECT *, 'import' FROM rows ON CONFLICT DO NOTHING"
            )
            after = self.con.execute("SELECT count(*) FROM candles").fetchone()
        imported = int(after[0]) - int(before[0]) if before and after else 0
        return imported, len(frame) - imported

    def prune_trades(self, retention_ms: int) -> int:
        """Drop trades older than `retention_ms` before each symbol's newest trade (they only serve dedup)."""
        with self.write_lock:
            rows = self.con.execute(
                "DELETE FROM trades t USING "
                "(SELECT symbol, max(trade_time_ms) AS newest FROM trades GROUP BY symbol) m "
                "WHERE t.symbol = m.symbol AND t.trade_time_ms < m.newest - ?",
                [retention_ms],
            ).fetchone()
        return int(rows[0]) if rows else 0

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
                params = {"sym": symbol}
            sql = (
                f"SELECT {_OUT} FROM ({base}) c WHERE open_time BETWEEN $lo AND $hi "
                "ORDER BY open_time DESC LIMIT $limit"
            )
            params.update(lo=lo, hi=hi, limit=limit)
            df = cur.sql(sql, params=params).pl()
        finally:
            cur.close()
        return df.sort("open_time")

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


def _derived_sql(ms: int) -> str:
    """Longer candles from stored ones: 5m where the length divides by it, else 1m."""
    base = "5m" if ms % 300_000 == 0 else "1m"
    return f"""
        SELECT symbol, '{ms}' AS interval, (open_time // {ms}) * {ms} AS open_time,
            arg_min(open, open_time) AS open, max(high) AS high, min(low) AS low,
            arg_max(close, open_time) AS close, sum(volume) AS volume, sum(quote_volume) AS quote_volume,
            CAST(sum(trades) AS BIGINT) AS trades, sum(taker_buy_volume) AS taker_buy_volume,
            sum(taker_buy_quote_volume) AS taker_buy_quote_volume,
            min(first_trade_id) AS first_trade_id, max(last_trade_id) AS last_trade_id,
            (open_time // {ms}) * {ms} + {ms - 1} AS close_time,
            CASE WHEN bool_and(source = 'live') THEN 'live' WHEN bool_and(source = 'rest') THEN 'rest'
                 ELSE 'mixed' END AS source
        FROM candles WHERE symbol = $sym AND interval = '{base}'
        GROUP BY symbol, (open_time // {ms})
    """


def _import_frame(symbol: str, interval: str, frame: pl.DataFrame) -> pl.DataFrame:
    ms = STORED_INTERVALS[interval]
    zero8 = pl.lit(0).cast(pl.Decimal(38, 8))
    zero16 = pl.lit(0).cast(pl.Decimal(38, 16))
    return frame.select(
        pl.lit(symbol).alias("symbol"), pl.lit(interval).alias("interval"),
        ((pl.col("open_time") // ms) * ms).alias("open_time"),
        "open", "high", "low", "close", "volume",
        (pl.col("quote_volume") if "quote_volume" in frame.columns else zero16).alias("quote_volume"),
        (pl.col("trades") if "trades" in frame.columns else pl.lit(0, pl.Int64)).alias("trades"),
        (pl.col("taker_buy_volume") if "taker_buy_volume" in frame.columns else zero8).alias("taker_buy_volume"),
        (pl.col("taker_buy_quote_volume") if "taker_buy_quote_volume" in frame.columns else zero16)
        .alias("taker_buy_quote_volume"),
        ((pl.col("open_time") // ms) * ms + ms - 1).alias("close_time"),
    )
