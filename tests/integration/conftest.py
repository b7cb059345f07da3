from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.browser_util import Chromium
from tests.integration.procs import Proc


@pytest.fixture(autouse=True)
def _no_orphan_processes() -> Iterator[None]:
    yield
    while Proc.running:
        proc = Proc.running.pop()
        if proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One headless chromium per test module (the browser tests')."""
    b = Chromium()
    try:
        yield b
    finally:
        b.close()
