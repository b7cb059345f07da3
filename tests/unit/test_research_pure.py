"""The research math stays pure: no Redis, DuckDB, Streamlit, HTTP, clock or file I/O outside the CLI module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYTICS = Path(__file__).resolve().parents[2] / "qs_analytics"
PURE = ("olsz", "backtest", "backtest_metrics", "coint", "johansen", "meanrev", "leadlag", "scanner", "garch")
FORBIDDEN_MODULES = {"redis", "duckdb", "streamlit", "httpx", "time", "datetime", "asyncio", "socket", "pathlib", "os"}
FORBIDDEN_CALLS = {"open", "print", "input"}


@pytest.mark.parametrize("name", PURE)
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
