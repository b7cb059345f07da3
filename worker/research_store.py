"""Pair-research tables in the worker's DuckDB file: scan runs and their rows, GARCH fits; and the candle reads
the research needs (aligned closes of many symbols).

Writes take the store's write lock on its connection (the candle consumer's batches and these never
interleave); reads use their own cursors, as `CandleStore`'s do, so a long scan read never holds a batch.
Every float column is DOUBLE: research figures are estimates, not exchange numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from qs_analytics.garch import GarchFit
from qs_analytics.scanner import COLUMNS as SCAN_COLUMNS
from worker.candles import ALL_INTERVALS
from worker.store import CandleStore, registered

_TEXT = ("y", "x", "sym_a", "sym_b")
RESULT_COLUMNS = (*SCAN_COLUMNS, "sym_a", "sym_b")
RUN_COLUMNS = ("run_id", "started_ms", "finished_ms", "trigger", "interval", "lookback", "symbols", "n_points",
               "first_open_ms", "last_open_ms", "pairs", "params", "error")  # fmt: skip
GARCH_FIELDS = tuple(GarchFit.__dataclass_fields__)
_GARCH_TYPES = {"converged": "BOOLEAN", "nobs": "BIGINT"}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS research_scan_runs (
    run_id BIGINT PRIMARY KEY,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    trigger VARCHAR NOT NULL,            -- schedule | demand
    interval VARCHAR NOT NULL,
    lookback INTEGER NOT NULL,
    symbols VARCHAR NOT NULL,            -- comma list, as asked
    n_points INTEGER,                    -- aligned rows the scan used
    first_open_ms BIGINT,
    last_open_ms BIGINT,
    pairs INTEGER,
    params VARCHAR NOT NULL,             -- JSON: every parameter that produced the rows
    error VARCHAR                        -- why the run produced no rows
);
CREATE TABLE IF NOT EXISTS research_scan_results (
    run_id BIGINT NOT NULL,
    {", ".join(f"{c} VARCHAR NOT NULL" if c in _TEXT else f"{c} DOUBLE" for c in RESULT_COLUMNS)}
);
CREATE TABLE IF NOT EXISTS research_garch (
    symbol VARCHAR NOT NULL,
    fitted_ms BIGINT NOT NULL,
    interval VARCHAR NOT NULL,
    first_open_ms BIGINT NOT NULL,
    last_open_ms BIGINT NOT NULL,
    {", ".join(f"{c} {_GARCH_TYPES.get(c, 'DOUBLE')}" for c in GARCH_FIELDS)},
    PRIMARY KEY (symbol, fitted_ms)
);
"""


@dataclass(frozen=True, slots=True)
class Closes:
    """Closes of several symbols on their common open times (inner join: a pair needs both legs)."""

    symbols: list[str]
    open_ms: npt.NDArray[np.int64]
    closes: npt.NDArray[np.float64]  # T × N
    liquidity: npt.NDArray[np.float64]  # median quote volume per candle, per symbol (nan if unknown)


class ResearchStore:
    def __init__(self, store: CandleStore) -> None:
        self.store = store
        with store.write_lock:
            store.con.execute(SCHEMA)

    # ---- reads of candles -------------------------------------------------------------------------------
    def closes(self, symbols: list[str], interval: str, lookback: int, end_ms: int | None = None) -> Closes:
        """The last `lookback` candles of each symbol, aligned on open time; ValueError naming what is missing."""
        if interval not in ALL_INTERVALS:
            raise ValueError(f"interval: {interval!r} is not one of {', '.join(ALL_INTERVALS)}")
        frames = []
        for sym in symbols:
            df = self.store.candles(sym, interval, None, end_ms, lookback)
            if df.height == 0:
                raise ValueError(f"no stored {interval} candles for {sym}")
            frames.append(df.select(
                pl.col("open_time"), pl.col("close").cast(pl.Float64).alias(sym),
                pl.col("quote_volume").cast(pl.Float64).alias(f"{sym}__qv"),
            ))  # fmt: skip
        joined = frames[0]
        for f in frames[1:]:
            joined = joined.join(f, on="open_time", how="inner")
        joined = joined.sort("open_time")
        c = joined.select(symbols).to_numpy().astype(np.float64) if joined.height else np.empty((0, len(symbols)))
        liq = np.array([_median(joined[f"{s}__qv"]) for s in symbols], dtype=np.float64)
        return Closes(list(symbols), joined["open_time"].to_numpy().astype(np.int64), c, liq)

    def closes_of(self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None,
                  limit: int) -> tuple[list[int], list[float]]:  # fmt: skip
        df = self.store.candles(symbol, interval, start_ms, end_ms, limit)
        return df["open_time"].to_list(), df["close"].cast(pl.Float64).to_list()

    # ---- scan runs ---------------------------------------------------------------------------------------
    def new_run(self, started_ms: int, trigger: str, interval: str, lookback: int, symbols: list[str],
                params: dict[str, Any]) -> int:  # fmt: skip
        with self.store.write_lock:
            con = self.store.con
            row = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM research_scan_runs").fetchone()
            run_id = int(row[0]) if row else 1
            con.execute(
                "INSERT INTO research_scan_runs (run_id, started_ms, trigger, interval, lookback, symbols, params) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, started_ms, trigger, interval, lookback, ",".join(symbols), json.dumps(params)],
            )
        return run_id

    def finish_run(self, run_id: int, finished_ms: int, table: dict[str, npt.NDArray[np.generic]] | None,
                   closes: Closes | None, error: str | None) -> None:  # fmt: skip
        """The run's rows and outcome, in one transaction (a reader sees all rows of a finished run or none)."""
        frame = _result_frame(run_id, table) if table is not None else None
        with self.store.write_lock, registered(self.store.con) as add:
            con = self.store.con
            con.execute("BEGIN TRANSACTION")
            try:
                if frame is not None:
                    add("frame", frame)
                    con.execute(f"INSERT INTO research_scan_results SELECT run_id, {', '.join(RESULT_COLUMNS)} "
                                "FROM frame")  # fmt: skip
                n = int(closes.open_ms.size) if closes is not None else None
                first = int(closes.open_ms[0]) if closes is not None and n else None
                last = int(closes.open_ms[-1]) if closes is not None and n else None
                pairs = int(next(iter(table.values())).size) if table else None
                con.execute(
                    "UPDATE research_scan_runs SET finished_ms = ?, n_points = ?, first_open_ms = ?, "
                    "last_open_ms = ?, pairs = ?, error = ? WHERE run_id = ?",
                    [finished_ms, n, first, last, pairs, error, run_id],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT {', '.join(RUN_COLUMNS)} FROM research_scan_runs ORDER BY run_id DESC LIMIT ?",
                          [limit])  # fmt: skip
        return [_run_dict(r) for r in rows]

    def run(self, which: str) -> dict[str, Any] | None:
        """`latest` (the newest finished run) or a run id; None when there is none."""
        cols = ", ".join(RUN_COLUMNS)
        if which == "latest":
            rows = self._read(f"SELECT {cols} FROM research_scan_runs WHERE finished_ms IS NOT NULL "
                              "ORDER BY run_id DESC LIMIT 1", [])  # fmt: skip
        else:
            rows = self._read(f"SELECT {cols} FROM research_scan_runs WHERE run_id = ?", [int(which)])
        return _run_dict(rows[0]) if rows else None

    def results(self, run_id: int) -> pl.DataFrame:
        """A run's rows, best first (smallest Engle–Granger p-value, then shortest half-life)."""
        cur = self.store.con.cursor()
        try:
            return cur.sql(
                f"SELECT {', '.join(RESULT_COLUMNS)} FROM research_scan_results WHERE run_id = $run "
                "ORDER BY p_value NULLS LAST, half_life NULLS LAST, y, x", params={"run": run_id}
            ).pl()
        finally:
            cur.close()

    # ---- GARCH -------------------------------------------------------------------------------------------
    def save_garch(self, symbol: str, fitted_ms: int, interval: str, first_ms: int, last_ms: int,
                   fit: GarchFit) -> None:  # fmt: skip
        d = fit.as_dict()
        values = [None if isinstance(d[c], float) and not math.isfinite(d[c]) else d[c] for c in GARCH_FIELDS]
        with self.store.write_lock:
            self.store.con.execute(
                f"INSERT OR REPLACE INTO research_garch (symbol, fitted_ms, interval, first_open_ms, last_open_ms, "
                f"{', '.join(GARCH_FIELDS)}) VALUES ({', '.join('?' * (5 + len(GARCH_FIELDS)))})",
                [symbol, fitted_ms, interval, first_ms, last_ms, *values],
            )

    def garch_latest(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """The newest fit of each symbol (or of one)."""
        cols = ("symbol", "fitted_ms", "interval", "first_open_ms", "last_open_ms", *GARCH_FIELDS)
        where = "WHERE symbol = ?" if symbol else ""
        rows = self._read(
            f"SELECT {', '.join(cols)} FROM research_garch {where} "
            "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY fitted_ms DESC) = 1 ORDER BY symbol",
            [symbol] if symbol else [],
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        cur = self.store.con.cursor()
        try:
            return cur.execute(sql, params).fetchall()
        finally:
            cur.close()


def _median(s: pl.Series) -> float:
    v = s.drop_nulls()
    return float(v.median()) if v.len() else math.nan  # type: ignore[arg-type]


def _run_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(RUN_COLUMNS, row, strict=True))
    d["symbols"] = d["symbols"].split(",") if d["symbols"] else []
    d["params"] = json.loads(d["params"])
    return d


def _result_frame(run_id: int, table: dict[str, npt.NDArray[np.generic]]) -> pl.DataFrame:
    cols: dict[str, Any] = {"run_id": np.full(next(iter(table.values())).size, run_id, dtype=np.int64)}
    for c in RESULT_COLUMNS:
        a = table[c]
        if c in _TEXT:
            cols[c] = [str(v) for v in a]
        else:  # nan (undefined) is stored NULL; ±inf stays (an exact fit's stat, a half-life of no reversion)
            cols[c] = pl.Series(c, a.astype(np.float64)).fill_nan(None)
    return pl.DataFrame(cols)

