"""REST candles into a real DuckDB file: fill, replace partial live candles, reconcile, never touch others."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from tests.conftest import BTC_RECORDING
from tests.recordings import trades
from worker.backfill.klines import klines_frame
from worker.backfill.plan import Job
from worker.backfill.storage import RestCandleStore
from worker.candles import trades_frame
from worker.store import CandleStore

M = 60_000
T0 = 1723161300000  # 23:55, the first full minute of the recording
NOW = T0 + 5 * M


def rest_row(open_ms: int, o: str, trades_n: int, volume: str = "1.00000000") -> list[object]:
    return [open_ms, o, o, o, o, volume, open_ms + M - 1, volume, trades_n, "0.00000000", "0.00000000", "0"]


@pytest.fixture
def store(tmp_path) -> CandleStore:
    s = CandleStore(tmp_path / "db.duckdb")
    yield s
    s.close()


def live_minute(store: CandleStore, minute: int, fraction: float = 1.0) -> dict[str, object]:
    """Apply the recorded trades of one minute (or its first part) as the live consumer does."""
    ts = [t for t in trades(BTC_RECORDING) if minute <= t["T"] < minute + fraction * M]
    store.apply_trades(trades_frame(
        [t["s"] for t in ts], [t["t"] for t in ts], [t["p"] for t in ts], [t["q"] for t in ts],
        [t["T"] for t in ts], [t["m"] for t in ts]))
    got = store.con.sql(f"SELECT * FROM candles WHERE interval = '1m' AND open_time = {minute}").pl()
    return got.row(0, named=True)


def as_rest(c: dict[str, object]) -> list[object]:
    q8 = Decimal("1e-8")
    return [c["open_time"], str(c["open"]), str(c["high"]), str(c["low"]), str(c["close"]), str(c["volume"]),
            c["close_time"], str(c["quote_volume"].quantize(q8)), c["trades"], str(c["taker_buy_volume"]),  # type: ignore[attr-defined]
            str(c["taker_buy_quote_volume"].quantize(q8)), "0"]  # type: ignore[attr-defined]


def rows(store: CandleStore) -> pl.DataFrame:
    return store.con.sql("SELECT * FROM candles WHERE interval = '1m' ORDER BY open_time").pl()


def test_rest_fills_empty_history_with_null_trade_ids(store: CandleStore) -> None:
    rest = RestCandleStore(store)
    result = rest.write(klines_frame("BTCUSDT", "1m", M, [rest_row(T0, "1.5", 3), rest_row(T0 + M, "2", 4)]), NOW)
    assert (result.inserted, result.replaced, result.agreed, result.differed) == (2, 0, 0, 0)
    got = rows(store)
    assert got["source"].to_list() == ["rest", "rest"] and got["first_trade_id"].null_count() == 2
    assert got["open"].to_list() == [Decimal("1.5"), Decimal("2")]
    again = rest.write(klines_frame("BTCUSDT", "1m", M, [rest_row(T0, "9", 99)]), NOW)
    assert again.inserted == again.replaced == 0 and rows(store)["open"][0] == Decimal("1.5")  # REST is final


def test_partial_live_candle_is_replaced_and_full_one_agrees(store: CandleStore) -> None:
    full = live_minute(store, T0)
    partial = live_minute(store, T0 + M, 0.5)
    other = CandleStore(store.path.parent / "other.duckdb")  # type: ignore[union-attr]
    complete = live_minute(other, T0 + M)
    other.close()
    rest = RestCandleStore(store)
    result = rest.write(klines_frame("BTCUSDT", "1m", M, [as_rest(full), as_rest(complete)]), NOW)
    assert (result.inserted, result.replaced, result.agreed, result.differed) == (0, 1, 1, 0)
    got = {r["open_time"]: r for r in rows(store).iter_rows(named=True)}
    assert got[T0]["source"] == "live" and got[T0]["first_trade_id"] == full["first_trade_id"]
    assert got[T0 + M]["source"] == "rest" and got[T0 + M]["trades"] == complete["trades"] > partial["trades"]
    assert got[T0 + M]["first_trade_id"] is None
    assert rest.reconcile_counts() == {"agreed": 1, "replaced": 1}
    # live trades of a replaced candle arriving late change nothing
    live_minute(store, T0 + M)
    assert rows(store).filter(pl.col("open_time") == T0 + M)["volume"][0] == complete["volume"]


def test_differing_or_more_complete_live_and_import_rows_are_kept(store: CandleStore) -> None:
    full = live_minute(store, T0)
    store.import_candles("BTCUSDT", "1m", pl.DataFrame({
        "open_time": [T0 + M], "open": ["5"], "high": ["5"], "low": ["5"], "close": ["5"], "volume": ["1"],
        # an import's optional columns come checked, null where the file did not know them
        "quote_volume": [None], "trades": [None], "taker_buy_volume": [None], "taker_buy_quote_volume": [None],
    }).with_columns(pl.col("open", "high", "low", "close", "volume").cast(pl.Decimal(38, 8))))
    fewer = as_rest(full)
    fewer[8] = int(full["trades"]) - 1  # type: ignore[call-overload]
    differs = as_rest(full)
    differs[4] = "1.00000000"
    rest = RestCandleStore(store)
    r1 = rest.write(klines_frame("BTCUSDT", "1m", M, [fewer, rest_row(T0 + M, "7", 1)]), NOW)
    assert (r1.inserted, r1.replaced, r1.differed) == (0, 0, 1)
    r2 = rest.write(klines_frame("BTCUSDT", "1m", M, [differs]), NOW)
    assert r2.differed == 1
    got = {r["open_time"]: r for r in rows(store).iter_rows(named=True)}
    assert got[T0]["source"] == "live" and got[T0]["high"] == full["high"]
    assert got[T0 + M]["source"] == "import" and got[T0 + M]["open"] == Decimal("5")


def test_jobs_survive_a_reopen(tmp_path) -> None:
    store = CandleStore(tmp_path / "jobs.duckdb")
    rest = RestCandleStore(store)
    job = Job("BTCUSDT", "5m", T0, T0 + 5 * M, "gap")
    assert rest.save_job(job) and not rest.save_job(Job("BTCUSDT", "5m", T0, T0 + 5 * M, "hole"))
    job.cursor_ms = T0 + M
    rest.update_job(job)
    store.close()
    reopened = CandleStore(tmp_path / "jobs.duckdb")
    try:
        assert RestCandleStore(reopened).load_jobs() == [Job("BTCUSDT", "5m", T0, T0 + 5 * M, "gap", T0 + M)]
        job.cursor_ms = job.end_ms
        RestCandleStore(reopened).update_job(job)
        assert RestCandleStore(reopened).load_jobs() == []
    finally:
        reopened.close()


def test_repair_mode_replaces_any_differing_live_candle_and_names_the_fields(store: CandleStore) -> None:
    full = live_minute(store, T0)
    fewer = live_minute(store, T0 + M, 0.5)
    store.import_candles("BTCUSDT", "1m", pl.DataFrame({
        "open_time": [T0 + 3 * M], "open": ["5"], "high": ["5"], "low": ["5"], "close": ["5"], "volume": ["1"],
        "quote_volume": [None], "trades": [None], "taker_buy_volume": [None], "taker_buy_quote_volume": [None],
    }).with_columns(pl.col("open", "high", "low", "close", "volume").cast(pl.Decimal(38, 8))))
    other = CandleStore(store.path.parent / "other.duckdb")  # type: ignore[union-attr]
    complete = live_minute(other, T0 + M)
    other.close()
    wrong_close = as_rest(full)
    wrong_close[4] = "1.00000000"  # same trades and volumes: the backfill keeps the live candle, the check does not
    klines = klines_frame("BTCUSDT", "1m", M, [wrong_close, as_rest(complete), rest_row(T0 + 2 * M, "7", 3),
                                               rest_row(T0 + 3 * M, "9", 9)])
    rest = RestCandleStore(store)
    result = rest.write(klines, NOW, reason="kline-check", repair=True, insert=False)
    assert (result.inserted, result.replaced, result.agreed, result.differed) == (0, 2, 0, 0)
    assert [(c["open_time"], c["outcome"], c["reason"], c["differed"]) for c in result.changes] == [
        (T0, "replaced", "kline-check", "close"),
        (T0 + M, "replaced", "kline-check", "trades,volume,quote_volume" + _rest_of_diff(fewer, complete)),
    ]
    got = {r["open_time"]: r for r in rows(store).iter_rows(named=True)}
    assert got[T0]["close"] == Decimal(1) and got[T0]["source"] == "rest"
    assert got[T0 + M]["trades"] == complete["trades"]
    assert T0 + 2 * M not in got  # a missing minute is the hole scan's, not the check's
    assert got[T0 + 3 * M]["source"] == "import"  # imports are never touched
    again = rest.write(klines, NOW, reason="kline-check", repair=True, insert=False)
    assert (again.replaced, again.agreed) == (0, 0)  # REST candles are not compared again


def _rest_of_diff(part: dict[str, object], whole: dict[str, object]) -> str:
    names = ["open", "high", "low", "close", "taker_buy_volume", "taker_buy_quote_volume"]
    return "".join(f",{n}" for n in names if part[n] != whole[n])
