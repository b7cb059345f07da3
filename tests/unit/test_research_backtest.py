"""The backtest against an independent, plainly written reading of the issue 9 §3 rules.

β and z for the reference come from the batch command's own output CSV (`ols_beta`, `zscore_ols`), parsed
back, so the comparison also checks that the backtest uses exactly the batch command's columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qs_analytics.backtest import BacktestParams, run_backtest
from qs_analytics.backtest_metrics import periods_per_year, summarize, sweep, walk_forward
from tests.unit.research_data import btc_1m, eth_btc_1s
from worker.analytics import batch

ROOT = Path(__file__).resolve().parents[2]
REL = 1e-9


def batch_columns(x, y, window):
    """ols_beta and zscore_ols as the batch command writes them (None for an empty cell)."""
    body = "".join(f"{i},{float(a)!r},{float(b)!r}\n" for i, (a, b) in enumerate(zip(x, y, strict=True)))
    src = io.StringIO("time,x,y\n" + body)
    dst = io.StringIO()
    batch.run(src, dst, window, 1e-4, 1e-3, 1.0)
    rows = list(csv.DictReader(io.StringIO(dst.getvalue())))
    cell = lambda v: float(v) if v != "" else None  # noqa: E731
    return [cell(r["ols_beta"]) for r in rows], [cell(r["zscore_ols"]) for r in rows]


def reference(x, y, beta, z, E, X, Q, fee, slip, S=None, K=None, spread_x=None, spread_y=None):
    """The rules as written, one row at a time; equity rebuilt afterwards from the trade list. With quoted
    spreads (bps per row, None = no book data), half the leg's spread at the fill row is added to its cost."""
    n = len(x)
    rate = (fee + slip) / 10000

    def leg_rate(spreads, t):
        if spreads is None or spreads[t] is None:
            return rate
        return rate + spreads[t] / 2 / 10000
    trades = []  # dicts; an open trade has exit_row None
    order = None
    current = None
    for t in range(n):
        # 1. fill what was decided at t-1, at row t's prices
        if order is not None and order[0] == "open":
            side, b = order[1], order[2]
            q = Q / y[t]
            if side == "LONG":
                qy, qx = q, -b * q
            else:
                qy, qx = -q, b * q
            current = {"entry_row": t, "side": side, "qty_y": qy, "qty_x": qx, "entry_y": y[t], "entry_x": x[t],
                       "exit_row": None}  # fmt: skip
            trades.append(current)
        elif order is not None and order[0] == "close":
            current["exit_row"] = t
            current["exit_y"] = y[t]
            current["exit_x"] = x[t]
            current["reason"] = order[1]
            current = None
        order = None
        # 2. decide at row t's close
        if z[t] is None or t == n - 1:
            continue
        zt = z[t]
        if current is None:
            if S is not None and abs(zt) >= S:
                continue
            if zt >= E:
                order = ("open", "SHORT", beta[t])
            elif zt <= -E:
                order = ("open", "LONG", beta[t])
        else:
            long = current["side"] == "LONG"
            stop = S is not None and abs(zt) >= S
            normal = (long and zt >= -X) or ((not long) and zt <= X)
            held = K is not None and t - current["entry_row"] >= K
            if stop or normal or held:
                order = ("close", "stop" if stop else "exit" if normal else "max_hold")
    for tr in trades:
        ey, ex = tr["entry_y"], tr["entry_x"]
        f, g = tr["entry_row"], tr["exit_row"]
        tr["entry_costs"] = leg_rate(spread_y, f) * abs(tr["qty_y"] * ey) + leg_rate(spread_x, f) * abs(
            tr["qty_x"] * ex)  # fmt: skip
        if tr["exit_row"] is not None:
            tr["gross_pnl"] = tr["qty_y"] * (tr["exit_y"] - ey) + tr["qty_x"] * (tr["exit_x"] - ex)
            exit_costs = leg_rate(spread_y, g) * abs(tr["qty_y"] * tr["exit_y"]) + leg_rate(spread_x, g) * abs(
                tr["qty_x"] * tr["exit_x"])  # fmt: skip
            tr["costs"] = tr["entry_costs"] + exit_costs
            tr["net_pnl"] = tr["gross_pnl"] - tr["costs"]
    equity = []
    for t in range(n):
        e = 0.0
        for tr in trades:
            if tr["exit_row"] is not None and tr["exit_row"] <= t:
                e += tr["net_pnl"]
            elif tr["entry_row"] <= t:
                e += tr["qty_y"] * (y[t] - tr["entry_y"]) + tr["qty_x"] * (x[t] - tr["entry_x"]) - tr["entry_costs"]
        equity.append(e)
    return [tr for tr in trades if tr["exit_row"] is not None], equity, trades


def close(a, b):
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b), 1e-300) or abs(a - b) < 1e-12


def assert_same(res, ref_trades, ref_equity, notional):
    assert len(res.trades) == len(ref_trades)
    for got, want in zip(res.trades, ref_trades, strict=True):
        assert (got.entry_row, got.exit_row, got.side, got.exit_reason) == (
            want["entry_row"], want["exit_row"], want["side"], want["reason"])  # fmt: skip
        for k in ("qty_y", "qty_x", "entry_y", "entry_x", "exit_y", "exit_x", "gross_pnl", "costs", "net_pnl"):
            assert close(getattr(got, k), want[k]), (k, getattr(got, k), want[k])
    assert len(res.equity) == len(ref_equity)
    for t, (g, w) in enumerate(zip(res.equity, ref_equity, strict=True)):
        # equity sums P&L of opposite sign: relative to the notional, as a P&L in money is judged
        assert abs(g - w) <= REL * max(abs(w), notional * 1e-3), (t, g, w)


def run_both(x, y, window, E, X, Q=10_000.0, fee=1.0, slip=0.5, S=None, K=None):
    beta, z = batch_columns(x, y, window)
    p = BacktestParams(window, E, X, Q, fee, slip, S, K)
    res = run_backtest(list(x), list(y), p)
    ref_trades, ref_eq, all_trades = reference(list(x), list(y), beta, z, E, X, Q, fee, slip, S, K)
    assert_same(res, ref_trades, ref_eq, Q)
    return res, all_trades, z


prices = st.lists(st.floats(-0.02, 0.02), min_size=30, max_size=160)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rx=prices,
    noise=st.lists(st.floats(-0.03, 0.03), min_size=160, max_size=160),
    window=st.integers(3, 20),
    E=st.floats(0.3, 2.5),
    X=st.floats(-0.5, 1.0),
    S=st.one_of(st.none(), st.floats(1.0, 3.5)),
    K=st.one_of(st.none(), st.integers(0, 15)),
    fee=st.floats(0, 10),
)
def test_matches_reference_on_generated_prices(rx, noise, window, E, X, S, K, fee):
    x = (100.0 * np.exp(np.cumsum(rx))).tolist()
    # a cointegrated leg with a stationary spread
    y = [50.0 + 0.4 * a + 20.0 * e for a, e in zip(x, noise, strict=False)]
    run_both(x, y, window, E, X, fee=fee, S=S, K=K)


def test_matches_reference_on_real_eth_btc_seconds():
    _, x, y = eth_btc_1s()
    seen = set()
    for window, E, X, S, K in [(30, 1.5, 0.0, 3.0, None), (20, 1.0, 0.5, None, 7), (60, 2.0, -0.2, 2.6, 30),
                               (15, 0.8, 0.0, 2.2, 3)]:  # fmt: skip
        res, all_trades, _ = run_both(x.tolist(), y.tolist(), window, E, X, S=S, K=K)
        seen |= {t.exit_reason for t in res.trades}
    assert seen == {"exit", "stop", "max_hold"}  # every way out happened on real data


def test_matches_reference_on_real_btc_minutes_against_lagged_self():
    # one real series and its 3-minute lag: a real, strongly related pair of 1,440 rows
    _, c, _ = btc_1m()
    x, y = c[3:].tolist(), c[:-3].tolist()
    res, all_trades, _ = run_both(x, y, 60, 2.0, 0.0, S=4.0, K=120)
    assert len(res.trades) > 5


def test_rules_on_hand_made_z():
    """Each rule on a z column written by hand (β = 2 throughout)."""
    n = 14
    x = [100.0 + t for t in range(n)]
    y = [50.0 + 0.5 * t for t in range(n)]
    beta = [2.0] * n
    N = None
    #   0  1    2    3    4    5    6    7    8     9    10   11   12    13
    z = [N, N, -3.0, 2.1, 1.0, -0.1, 0.2, -2.2, -1.0, N, -0.5, 0.0, 1.7, 2.0]
    p = BacktestParams(5, 2.0, 0.0, 1000.0, 0.0, 0.0, stop=3.0, max_hold=None)
    res = run_backtest(x, y, p, beta, z)
    # row 2: |z| = S exactly, no entry; row 3 opens SHORT (filled 4); row 5 z <= 0 exits (filled 6);
    # row 7 opens LONG (filled 8); row 9 empty: no decision; row 10 z >= 0? no (-0.5); row 11 exits (filled 12);
    # row 13 z >= E but it is the last row: never filled
    assert [(t.side, t.entry_row, t.exit_row, t.signal_row) for t in res.trades] == [
        ("SHORT", 4, 6, 3), ("LONG", 8, 12, 7)]  # fmt: skip
    assert res.open_position is None
    t0 = res.trades[0]
    q = 1000.0 / y[4]
    assert (t0.qty_y, t0.qty_x) == (-q, 2.0 * q)
    assert res.in_position == [False] * 4 + [True, True] + [False, False] + [True] * 4 + [False, False]
    bt, zt, ref_eq = beta, z, reference(x, y, beta, z, 2.0, 0.0, 1000.0, 0.0, 0.0, 3.0, None)[1]
    assert res.equity == pytest.approx(ref_eq, rel=1e-12)
    assert bt is beta and zt is z


def test_stop_max_hold_and_open_at_end_on_hand_made_z():
    n = 12
    x = [100.0 + (t % 3) for t in range(n)]
    y = [50.0 + (t % 4) for t in range(n)]
    beta = [0.5] * n
    z = [None, -2.5, -2.6, -4.1, -1.0, 2.5, 2.6, 2.4, 2.3, 2.2, 2.1, 2.0]
    p = BacktestParams(5, 2.0, 0.0, 1000.0, 2.0, 1.0, stop=4.0, max_hold=2)
    res = run_backtest(x, y, p, beta, z)
    # LONG decided 1, filled 2; row 3 |z| >= S: stop, filled 4; row 5 opens SHORT, filled 6;
    # rows 6, 7 hold (t - f = 0, 1); row 8: t - f = 2 >= K: max-hold exit filled 9;
    # row 9 z >= E: SHORT filled 10; row 11 is the last row: its exit decision is never filled
    assert [(t.side, t.entry_row, t.exit_row, t.exit_reason) for t in res.trades] == [
        ("LONG", 2, 4, "stop"), ("SHORT", 6, 9, "max_hold")]  # fmt: skip
    assert res.open_position is not None and res.open_position.entry_row == 10
    tr, eq, _ = reference(x, y, beta, z, 2.0, 0.0, 1000.0, 2.0, 1.0, 4.0, 2)
    assert_same(res, tr, eq, 1000.0)
    # the open trade is marked at the last row minus its entry costs
    op = res.open_position
    mark = op.qty_y * (y[-1] - op.entry_y) + op.qty_x * (x[-1] - op.entry_x) - op.entry_costs
    assert res.equity[-1] == pytest.approx(sum(t.net_pnl for t in res.trades) + mark, rel=1e-12)


def test_cli_subprocess_writes_the_contract_files(tmp_path):
    ts, x, y = eth_btc_1s()
    src = tmp_path / "in.csv"
    rows = zip(ts.tolist(), x.tolist(), y.tolist(), strict=True)
    src.write_text("time,x,y\n" + "".join(f"{t},{a!r},{b!r}\n" for t, a, b in rows))
    tr, eqf, sm = tmp_path / "trades.csv", tmp_path / "equity.csv", tmp_path / "summary.json"
    args = [
        "--input",
        str(src),
        "--window",
        "30",
        "--entry",
        "1.5",
        "--exit",
        "0",
        "--stop",
        "3",
        "--max-hold",
        "25",
        "--fee-bps",
        "1",
        "--slippage-bps",
        "0.5",
        "--notional",
        "10000",
        "--trades",
        str(tr),
        "--equity",
        str(eqf),
    ]
    out = subprocess.run([sys.executable, "-m", "worker.analytics", "backtest", *args, "--summary", str(sm)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    beta, z = batch_columns(x.tolist(), y.tolist(), 30)
    ref_trades, ref_eq, _ = reference(x.tolist(), y.tolist(), beta, z, 1.5, 0.0, 10000.0, 1.0, 0.5, 3.0, 25)
    rows = list(csv.DictReader(tr.open()))
    assert list(rows[0])[:12] == ["entry_row", "exit_row", "side", "qty_y", "qty_x", "entry_y", "entry_x", "exit_y",
                                  "exit_x", "gross_pnl", "costs", "net_pnl"]  # fmt: skip
    assert len(rows) == len(ref_trades) > 3
    for r, w in zip(rows, ref_trades, strict=True):
        assert (int(r["entry_row"]), int(r["exit_row"]), r["side"]) == (w["entry_row"], w["exit_row"], w["side"])
        for k in ("qty_y", "qty_x", "entry_y", "entry_x", "exit_y", "exit_x", "gross_pnl", "costs", "net_pnl"):
            assert close(float(r[k]), w[k]), k
    eq = list(csv.DictReader(eqf.open()))
    assert [int(r["time"]) for r in eq] == ts.tolist()
    for r, w in zip(eq, ref_eq, strict=True):
        assert abs(float(r["equity"]) - w) <= REL * max(abs(w), 10.0)
    s = json.loads(sm.read_text())
    assert s["n_trades"] == len(ref_trades) and s["periods_per_year"] == 365.25 * 86400
    # bad input: the row and column are named, nothing half-written is left
    bad = tmp_path / "bad.csv"
    bad.write_text("time,x,y\n1,100,50\n2,100,-3\n")
    out = subprocess.run([sys.executable, "-m", "worker.analytics", "backtest", *args[:1], str(bad), *args[2:]],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "row 3, column 'y'" in out.stderr
    assert not tr.exists() and not eqf.exists()


def test_summary_metrics_by_their_definitions():
    _, x, y = eth_btc_1s()
    ts = np.arange(len(x)) * 60_000 + 1_700_000_000_000  # 1m steps in ms
    p = BacktestParams(20, 1.0, 0.0, 5000.0, 1.0, 1.0, 3.0, 20)
    res = run_backtest(list(x), list(y), p)
    m = summarize(res, 5000.0, ts.tolist())
    eq = np.array(res.equity)
    r = np.diff(eq) / 5000.0
    ppy = 365.25 * 1440
    assert m["periods_per_year"] == pytest.approx(ppy, rel=1e-15)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-9)
    assert m["sortino"] == pytest.approx(
        r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(ppy), rel=1e-9
    )
    cap = 5000.0 + eq
    assert m["max_drawdown"] == pytest.approx(np.max(1 - cap / np.maximum.accumulate(cap)), rel=1e-9)
    pnl = [t.net_pnl for t in res.trades]
    assert m["n_trades"] == len(pnl) and m["hit_rate"] == sum(v > 0 for v in pnl) / len(pnl)
    assert m["avg_trade"] == pytest.approx(np.mean(pnl), rel=1e-12)
    assert m["total_return"] == pytest.approx(eq[-1] / 5000.0, rel=1e-15)
    assert m["exposure"] == pytest.approx(np.mean(res.in_position), rel=1e-15)
    legs = sum(abs(t.qty_y) * (t.entry_y + t.exit_y) + abs(t.qty_x) * (t.entry_x + t.exit_x) for t in res.trades)
    if res.open_position is not None:
        legs += abs(res.open_position.qty_y * res.open_position.entry_y) + abs(
            res.open_position.qty_x * res.open_position.entry_x
        )
    assert m["turnover"] == pytest.approx(legs / 5000.0, rel=1e-12)
    assert periods_per_year([0, 1, 2, 4]) == pytest.approx(365.25 * 86400, rel=1e-15)  # seconds by size


def test_sweep_and_walk_forward():
    ts, x, y = eth_btc_1s()
    base = BacktestParams(10, 1.0, 0.0, 10_000.0, 1.0, 0.0)
    grid = sweep(ts.tolist(), x.tolist(), y.tolist(), base, [1.0, 2.0], [10, 30])
    assert [[(c.window, c.entry) for c in line] for line in grid] == [[(10, 1.0), (10, 2.0)], [(30, 1.0), (30, 2.0)]]
    one = run_backtest(x.tolist(), y.tolist(), BacktestParams(30, 2.0, 0.0, 10_000.0, 1.0, 0.0))
    assert grid[1][1].metrics == summarize(one, 10_000.0, ts.tolist())
    wf = walk_forward(ts.tolist(), x.tolist(), y.tolist(), base, [1.0, 2.0], [10, 30], split=0.5)
    assert wf.split_row == len(x) // 2
    best = max((c for line in wf.grid for c in line), key=lambda c: c.metrics["sharpe"])
    assert (wf.chosen.window, wf.chosen.entry) == (best.window, best.entry)
    oos = run_backtest(x.tolist(), y.tolist(), wf.chosen, first_decision_row=wf.split_row)
    assert all(t.signal_row >= wf.split_row for t in oos.trades)
    assert wf.out_of_sample["n_trades"] == len(oos.trades)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="entry"):
        run_backtest([1.0, 2.0], [1.0, 2.0], BacktestParams(2, -1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="fee_bps"):
        run_backtest([1.0, 2.0], [1.0, 2.0], BacktestParams(2, 1.0, 0.0, 1.0, math.nan))
    with pytest.raises(ValueError, match="notional"):
        run_backtest([1.0, 2.0], [1.0, 2.0], BacktestParams(2, 1.0, 0.0, -1.0))


def engine_columns(x, y, window, source, huber_every=1):
    """β_t and z_t built in the test from the engine's own classes, row by row: the Kalman state after its update
    (or the last Huber fit over the window), the spread y − βx − α and its z over the last N spreads (ddof 1)."""
    from qs_analytics.kalman import KalmanHedge
    from qs_analytics.robust import HuberFairValue
    from qs_analytics.spread import SpreadZScore

    kal = KalmanHedge()  # the engine's defaults (qs_analytics.defaults)
    hub = HuberFairValue(max(window, 3), refit_every_n=huber_every)
    zs = SpreadZScore(window)
    beta, z = [], []
    for t, (a, b) in enumerate(zip(x, y, strict=True)):
        if source == "kalman":
            k = kal.update(a, b)
            bt, at = k.beta, k.alpha
        else:
            f = hub.update(t, a, b)
            if f is None:
                beta.append(None)
                z.append(None)
                continue
            bt, at = f.beta, f.alpha
        r = zs.update(b - bt * a - at)
        beta.append(bt)
        z.append(None if r is None or not math.isfinite(r.z) else r.z)
    return beta, z


@pytest.mark.parametrize(("source", "every"), [("kalman", 1), ("huber", 1), ("huber", 7)])
def test_kalman_and_huber_beta_sources_match_the_reference_on_engine_columns(source, every):
    _, x, y = eth_btc_1s()
    x, y = x.tolist(), y.tolist()  # 346 real rows
    window, E, X, S, K, Q = 30, 1.5, 0.0, 3.0, 40, 10_000.0
    beta, z = engine_columns(x, y, window, source, every)
    assert sum(v is not None for v in z) > 280
    p = BacktestParams(window, E, X, Q, 1.0, 0.5, S, K, beta_source=source, huber_every=every)
    res = run_backtest(x, y, p)
    ref_trades, ref_eq, _ = reference(x, y, beta, z, E, X, Q, 1.0, 0.5, S, K)
    assert len(ref_trades) > 3
    assert_same(res, ref_trades, ref_eq, Q)
    # a different β source trades differently from OLS: the option is not ignored
    ols = run_backtest(x, y, BacktestParams(window, E, X, Q, 1.0, 0.5, S, K))
    assert [t.entry_row for t in ols.trades] != [t.entry_row for t in res.trades]


def test_cli_beta_source_flag(tmp_path):
    ts, x, y = eth_btc_1s()
    n = len(x)
    src = tmp_path / "in.csv"
    rows = zip(ts[:n].tolist(), x[:n].tolist(), y[:n].tolist(), strict=True)
    src.write_text("time,x,y\n" + "".join(f"{t},{a!r},{b!r}\n" for t, a, b in rows))
    base = ["--input", str(src), "--window", "30", "--entry", "1.5", "--exit", "0", "--fee-bps", "1",
            "--slippage-bps", "0.5", "--notional", "10000"]  # fmt: skip
    outs = {}
    for flag in ([], ["--beta-source", "ols"], ["--beta-source", "kalman"]):
        tr, eqf = tmp_path / "t.csv", tmp_path / "e.csv"
        cmd = [sys.executable, "-m", "worker.analytics", "backtest", *base, "--trades", str(tr), "--equity", str(eqf)]
        out = subprocess.run([*cmd, *flag], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        outs[tuple(flag)] = (tr.read_text(), eqf.read_text())
    assert outs[()] == outs[("--beta-source", "ols")]  # default: OLS, output unchanged
    beta, z = engine_columns(x[:n].tolist(), y[:n].tolist(), 30, "kalman")
    ref_trades, _, _ = reference(x[:n].tolist(), y[:n].tolist(), beta, z, 1.5, 0.0, 10000.0, 1.0, 0.5)
    rows = list(csv.DictReader(io.StringIO(outs[("--beta-source", "kalman")][0])))
    assert [(int(r["entry_row"]), int(r["exit_row"])) for r in rows] == [
        (t["entry_row"], t["exit_row"]) for t in ref_trades]  # fmt: skip
    for r, w in zip(rows, ref_trades, strict=True):
        assert close(float(r["net_pnl"]), w["net_pnl"])
    cmd = [sys.executable, "-m", "worker.analytics", "backtest", *base, "--trades", "t", "--equity", "e"]
    bad = subprocess.run([*cmd, "--beta-source", "theilsen"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "beta-source" in bad.stderr


def test_half_the_quoted_spread_is_added_at_each_fill():
    """Per-row quoted spreads (with gaps: no book data at some rows) against the plain loop; costs only grow."""
    _, x, y = eth_btc_1s()
    x, y = x.tolist(), y.tolist()
    rng = np.random.default_rng(7)
    sx = [None if i % 11 == 0 else float(v) for i, v in enumerate(rng.uniform(0.1, 4.0, len(x)))]
    sy = [None if i % 7 == 0 else float(v) for i, v in enumerate(rng.uniform(0.5, 9.0, len(x)))]
    p = BacktestParams(20, 1.0, 0.0, 10_000.0, 1.0, 0.5, 3.0, 20)
    beta, z = batch_columns(x, y, 20)
    res = run_backtest(x, y, p, spread_bps_x=sx, spread_bps_y=sy)
    ref_trades, ref_eq, _ = reference(x, y, beta, z, 1.0, 0.0, 10_000.0, 1.0, 0.5, 3.0, 20, sx, sy)
    assert len(ref_trades) > 3
    assert_same(res, ref_trades, ref_eq, 10_000.0)
    plain = run_backtest(x, y, p)
    assert [t.entry_row for t in plain.trades] == [t.entry_row for t in res.trades]  # costs never change decisions
    assert all(a.costs > b.costs for a, b in zip(res.trades, plain.trades, strict=True))
    # one leg only; and in the sweep / walk-forward
    res_y = run_backtest(x, y, p, spread_bps_y=sy)
    assert_same(res_y, *reference(x, y, beta, z, 1.0, 0.0, 10_000.0, 1.0, 0.5, 3.0, 20, None, sy)[:2], 10_000.0)
    grid = sweep(list(range(len(x))), x, y, p, [1.0], [20], spread_bps_x=sx, spread_bps_y=sy)
    assert grid[0][0].metrics == summarize(res, 10_000.0, list(range(len(x))))
    with pytest.raises(ValueError, match="spread_bps_x at row 3"):
        run_backtest(x, y, p, spread_bps_x=[1.0, 1.0, 1.0, -2.0] + [1.0] * (len(x) - 4))
    with pytest.raises(ValueError, match="spread_bps_y must have one value per row"):
        run_backtest(x, y, p, spread_bps_y=[1.0])


def test_cli_reads_the_optional_spread_columns(tmp_path):
    ts, x, y = eth_btc_1s()
    sx = ["" if i % 5 == 0 else f"{1 + (i % 3) * 0.5!r}" for i in range(len(x))]
    sy = [f"{2 + (i % 4) * 0.25!r}" for i in range(len(x))]
    src = tmp_path / "in.csv"
    rows = zip(ts.tolist(), x.tolist(), y.tolist(), sx, sy, strict=True)
    body = "".join(f"{t},{a!r},{b!r},{c},{d}\n" for t, a, b, c, d in rows)
    src.write_text("time,x,y,spread_bps_x,spread_bps_y\n" + body)
    tr, eqf = tmp_path / "t.csv", tmp_path / "e.csv"
    cmd = [sys.executable, "-m", "worker.analytics", "backtest", "--input", str(src), "--window", "20", "--entry", "1",
           "--exit", "0", "--fee-bps", "1", "--slippage-bps", "0.5", "--notional", "10000", "--trades", str(tr),
           "--equity", str(eqf)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    beta, z = batch_columns(x.tolist(), y.tolist(), 20)
    fx = [float(v) if v else None for v in sx]
    fy = [float(v) for v in sy]
    ref_trades, ref_eq, _ = reference(x.tolist(), y.tolist(), beta, z, 1.0, 0.0, 10000.0, 1.0, 0.5, None, None, fx, fy)
    got = list(csv.DictReader(tr.open()))
    assert len(got) == len(ref_trades) > 3
    for r, w in zip(got, ref_trades, strict=True):
        assert close(float(r["costs"]), w["costs"]) and close(float(r["net_pnl"]), w["net_pnl"])
    bad = tmp_path / "bad.csv"
    bad.write_text("time,x,y,spread_bps_y\n1,100,50,1\n2,100,51,-3\n")
    out = subprocess.run([*cmd[:5], str(bad), *cmd[6:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "row 3, column 'spread_bps_y'" in out.stderr
