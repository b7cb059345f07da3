from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import RedisClusterServers, start_cluster
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


@pytest.fixture(scope="session")
def _shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    # no append-only file: no test restarts a node of this cluster (one that kills a node starts its own), and an
    # fsync per write would cost every test that shares it
    servers = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3, appendonly=False)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def cluster(_shared_cluster: RedisClusterServers) -> RedisClusterServers:
    """A real three-master Redis Cluster, empty. One for the whole session (starting one costs seconds of a loaded
    machine, and every module of the cluster tests asked for its own); a test that kills a node starts its own."""
    _shared_cluster.reset()
    return _shared_cluster
