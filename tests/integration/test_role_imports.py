"""Each worker role imports only what it runs (issue 12): with one process per group, a role importing every
role's modules cost +333 MB for the three processes. The real `python -m worker --role ...` against a real
redis-server, its imports listed by CPython itself (`-X importtime`), read once its consumers run."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, service_env
from tests.integration.procs import Proc, wait_for

pytestmark = pytest.mark.integration

# status records written once the role's consumers (and the candle role's API) run
READY = {"candles": ("worker-candles", "worker-api"), "analytics": ("worker-analytics",), "book": ("worker-book",)}
READY["all"] = READY["candles"] + READY["analytics"] + READY["book"]
CANDLES = {"worker.candle_consumer", "worker.store", "worker.api", "worker.research_service", "uvicorn"}
ANALYTICS = {"worker.analytics_consumer", "sklearn", "statsmodels"}
BOOK = {"worker.book_service"}
# what each role must not load: another role's handlers and the libraries only those need
NOT_IMPORTED = {
    "candles": {"worker.analytics_consumer", "sklearn"} | BOOK,  # research needs statsmodels too
    "analytics": CANDLES | BOOK | {"starlette"},
    "book": CANDLES | ANALYTICS | {"scipy", "numpy", "polars", "pandas"},
    "all": set(),
}
IMPORTED = {"candles": CANDLES, "analytics": ANALYTICS, "book": BOOK, "all": CANDLES | ANALYTICS | BOOK}
_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def imported_modules(log: str) -> set[str]:
    return {m.group(1) for line in log.splitlines() if (m := _LINE.match(line))}


@pytest.mark.parametrize("role", ["candles", "analytics", "book", "all"])
def test_a_role_imports_its_own_modules_only(tmp_path: Path, redis_server, r, role):
    args = [sys.executable, "-X", "importtime", "-m", "worker"] + ([] if role == "all" else ["--role", role])
    env = service_env(redis_server.url, tmp_path / "data", API_HOST="127.0.0.1", API_PORT=str(free_port()),
                      SYMBOLS="BTCUSDT,ETHUSDT")
    proc = Proc(args, env, tmp_path / "worker.log")
    wait_for(lambda: proc.p.poll() is None and all(r.exists(f"status:{s}") for s in READY[role]), 120,
             f"the {role} role's status records")
    assert proc.stop(signal.SIGTERM) == 0, proc.log()
    modules = imported_modules(proc.log())
    assert len(modules) > 200, proc.log()[-2000:]  # the listing was read (a format change would pass vacuously)
    assert IMPORTED[role] <= modules, IMPORTED[role] - modules
    assert not NOT_IMPORTED[role] & modules, sorted(NOT_IMPORTED[role] & modules)
