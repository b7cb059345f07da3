"""A real Redis Cluster on this machine for tests: `redis-server --cluster-enabled yes` processes on free ports,
joined with `redis-cli --cluster create` (masters, optionally one replica each), torn down after the test; or the
suite's one shared three-master cluster (the `cluster` fixture of tests/integration/conftest.py), emptied before each
test that uses it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import free_port


@dataclass
class ClusterNode:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class RedisClusterServers:
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any seed node is enough: the client discovers the rest."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=5)

    def master_of(self, key: str) -> ClusterNode:
        node = self.client().get_node_from_key(key)
        return next(n for n in self.nodes if n.port == int(node.port))

    def kill(self, node: ClusterNode) -> None:
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=5)

    def reset(self) -> None:
        """Empty every master (keys, streams and their groups), for the next test on a shared cluster. A test that
        kills a node starts a cluster of its own: a shared one that lost a node fails here, naming the reason."""
        dead = [n.port for n in self.nodes if n.proc.poll() is not None]
        if dead:
            pytest.fail(f"the shared Redis Cluster lost nodes {dead}: a test that kills one must start its own")
        for n in self.nodes:
            c = n.client()
            try:
                if c.execute_command("ROLE")[0] == b"master":
                    c.flushall()
            finally:
                c.close()
        wait_cluster_ok(self)

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes:
            try:
                n.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                n.proc.kill()


def _cluster_port() -> int:
    """A free port for a cluster node: at most 55535 (its cluster bus listens 10,000 above, which must be free too;
    redis-server refuses to start otherwise), where `free_port` may return anything up to 65535."""
    for _ in range(200):
        port = free_port()
        if port > 55_535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    pytest.fail("no free port pair for a cluster node")


def _start_node(workdir: Path, port: int, appendonly: bool) -> ClusterNode:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/install-deps.sh (make test does)")
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--save", "",
         "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always", "--dir", str(workdir),
         "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    node = ClusterNode(port, workdir, proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if node.client().ping():
                return node
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"cluster node did not start on port {port}")


def start_cluster(workdir: Path, masters: int = 3, replicas: int = 0, appendonly: bool = True) -> RedisClusterServers:
    """`masters` masters (3 at least, as `redis-cli --cluster create` demands), each with `replicas` replicas,
    every slot covered and the cluster state `ok` before it returns."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is not installed: run scripts/install-deps.sh (make test does)")
    servers = RedisClusterServers()
    for i in range(masters * (1 + replicas)):
        port = _cluster_port()
        servers.nodes.append(_start_node(workdir / f"node{i}-{port}", port, appendonly))
    addrs = [f"127.0.0.1:{n.port}" for n in servers.nodes]
    done = subprocess.run(
        [cli, "--cluster", "create", *addrs, "--cluster-replicas", str(replicas), "--cluster-yes"],
        capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        servers.stop()
        pytest.fail(f"redis-cli --cluster create failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    wait_cluster_ok(servers)
    return servers


def wait_cluster_ok(servers: RedisClusterServers, timeout_s: float = 30.0) -> None:
    """Until every live node reports `cluster_state:ok` (all slots served; after a failover, by the promoted
    replica)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = []
        for n in servers.nodes:
            if n.proc.poll() is not None:
                continue
            try:
                states.append(str(n.client().cluster("info").get("cluster_state")))
            except redis.RedisError:
                states.append("down")
        if states and all(s == "ok" for s in states):
            return
        time.sleep(0.1)
    pytest.fail(f"cluster not ok within {timeout_s:g} s")
