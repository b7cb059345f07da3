"""qs_analytics stays pure: no Redis, DuckDB, Streamlit, HTTP, clock or file I/O in any of its modules.

`lint-imports` (pyproject.toml) checks the imports across the whole graph; this test also catches the
built-in calls that need no import (open, print, input) and runs with the tests, so a broken rule shows up
even where `make lint` was not run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYTICS = Path(__file__).resolve().parents[2] / "qs_analytics"
MODULES = sorted(p.stem for p in ANALYTICS.glob("*.py"))
# the research modules of issue 9, named so that a rename cannot drop them from the check unnoticed
RESEARCH = ("olsz", "backtest", "backtest_metrics", "coint", "johansen", "meanrev", "leadlag", "scanner", "garch")
FORBIDDEN_MODULES = {
    "redis", "duckdb", "streamlit", "httpx", "websockets", "starlette", "uvicorn", "time", "datetime", "asyncio",
    "socket", "pathlib", "os", "subprocess", "worker", "ingest", "dashboard",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "print", "input"}


def test_every_research_module_is_checked():
    assert set(RESEARCH) <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_is_pure(name):
    tree = ast.parse((ANALYTICS / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        else:
            roots = set()
        assert not roots & FORBIDDEN_MODULES, f"{name}.py imports {roots & FORBIDDEN_MODULES}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{name}.py calls {node.func.id}()"
