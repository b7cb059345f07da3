"""The import contracts of pyproject.toml hold (`lint-imports`): pure analytics, independent apps, a qs_common
that imports no app. Run with the tests too, so that CI's `make test` checks them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CMD = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_are_kept():
    p = subprocess.run([sys.executable, "-c", CMD, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", p.stdout)
    assert kept and int(kept.group(1)) >= 3, p.stdout[-2000:]  # none of the three went missing
