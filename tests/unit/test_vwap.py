"""One VWAP (issue 13 seam 4): the live candle's JSON and the stored candle served by /candles give the same text.

worker.candles.vwap_text is the definition (exact quote volume / volume, 8 places, ties away from zero); the
store used to divide in DuckDB (floating point) and the live path rounded ties to even with exponent notation.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from worker.candle_consumer import candle_json
from worker.candles import trades_frame, vwap_text
from worker.store import CandleStore

T0 = 1_700_000_040_000  # on the 1m grid


def _store(tmp_path: Path, prices: list[str], qtys: list[str]) -> tuple[dict[str, object], dict[str, object]]:
    store = CandleStore(tmp_path / "c.duckdb")
    try:
        n = len(prices)
        merged = store.apply_trades(trades_frame(["TIEUSDT"] * n, list(range(1, n + 1)), prices, qtys,
                                                 [T0 + i for i in range(n)], [False] * n))
        live = candle_json(next(r for r in merged.to_dicts() if r["interval"] == "1m"))
        stored = store.candles("TIEUSDT", "1m", None, None, 10).to_dicts()[0]
    finally:
        store.close()
    return live, stored


def test_a_vwap_tie_rounds_away_from_zero_live_and_stored(tmp_path: Path) -> None:
    # (0.00000002 + 0.00000003) / 2 = 0.000000025 exactly: half-even would say ...02, a double ...02 or ...03
    live, stored = _store(tmp_path, ["0.00000002", "0.00000003"], ["1", "1"])
    assert live["vwap"] == stored["vwap"] == "0.00000003"


def test_a_quote_volume_tie_is_the_same_text_live_and_stored(tmp_path: Path) -> None:
    live, stored = _store(tmp_path, ["0.50000000", "0.50000000"], ["0.00000001", "0.00000002"])
    assert live["quote_volume"] == stored["quote_volume"] == "0.00000002"  # 0.000000015 -> ...02
    assert live["vwap"] == stored["vwap"] == "0.50000000"


def test_large_values_stay_exact(tmp_path: Path) -> None:
    live, stored = _store(tmp_path, ["99999999.99999999", "12345678.12345678"], ["33333333.33333333", "1"])
    assert live["vwap"] == stored["vwap"]
    assert live["quote_volume"] == stored["quote_volume"]


def test_no_volume_or_unknown_quote_volume_has_no_vwap() -> None:
    assert vwap_text(Decimal(0), Decimal(0)) is None
    assert vwap_text(None, Decimal(1)) is None
