"""`python -m bench` (make bench) runs: its cheapest part, quick (redis-benchmark against its own redis-server),
prints the side-by-side table. Figures are not checked: speed lives in bench/, never in assertions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-benchmark is not installed")
def test_quick_bench_prints_the_side_by_side_table():
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "ceiling"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| what | now | before (docs/benchmarks.md) | target | load avg | note |" in res.stdout
    row = next(line for line in res.stdout.splitlines() if "9 fields (tick-like)" in line)
    assert re.search(r"\| [\d,]+/s \|", row), row  # a measured rate, beside the recorded one
    assert "238,000" in row


def test_unknown_part_is_named():
    res = subprocess.run([sys.executable, "-m", "bench", "--only", "nonsense"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0 and "nonsense" in res.stderr
