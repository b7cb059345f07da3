"""k8s/components/redis-cluster for real, without Kubernetes: six `redis-server` processes started with the
StatefulSet's own arguments (as rendered by `kubectl kustomize k8s/overlays/local-cluster`), joined by the
cluster-create Job's own script, then used through the product's client (qs_common.redis_client).

Only what Kubernetes itself provides is stood in for: each pod's DNS name (redis-cluster-<k>.redis-cluster) and
its one address become an address of its own on the loopback range, port 6379 as in the pods, and /data a
temporary folder.
"""

from __future__ import annotations

import functools
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from qs_common.redis_client import connect

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "k8s-test-pw"


@functools.cache  # one kustomize run per overlay: the StatefulSet and the Job come from the same rendering
def rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = Path(sys.executable).parent / "kubectl"
    done = subprocess.run([str(kubectl), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def node_args(template: list[str], ip: str, data: Path) -> list[str]:
    """The StatefulSet's args for one pod: $(POD_NAME).redis-cluster -> this node's address, /data -> its folder."""
    out = []
    for arg in template:
        arg = arg.replace("$(POD_NAME).redis-cluster", ip).replace("$(REDIS_PASSWORD)", PASSWORD)
        out.append(arg.replace("/data/", f"{data}/"))
    assert not any("$(" in a for a in out), out
    return out


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[str]]:
    objs = rendered("local-cluster")
    sts = find(objs, "StatefulSet", "redis-cluster")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    prefix = f"127.{random.randint(20, 250)}.{random.randint(0, 250)}"  # six addresses nobody else uses
    ips = [f"{prefix}.{i + 1}" for i in range(sts["spec"]["replicas"])]
    procs = []
    try:
        for i, ip in enumerate(ips):
            data = tmp_path / f"redis-cluster-{i}"
            data.mkdir()
            # --cluster-announce-ip: a pod has one address; here the kernel would pick 127.0.0.1 as the source of
            # the nodes' connections to each other, and they would gossip that address instead of their own
            argv = [shutil.which("redis-server") or "redis-server", *node_args(container["args"], ip, data),
                    "--bind", ip, "--port", "6379", "--cluster-announce-ip", ip, "--dir", str(data),
                    "--logfile", str(data / "redis.log")]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield ips
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def job_script(ips: list[str]) -> str:
    """The Job's script, with a pod's DNS name standing for its address (resolving it is all getent does there)."""
    job = find(rendered("local-cluster"), "Job", "redis-cluster-create")
    script: str = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for old, new in (('host="redis-cluster-$i.redis-cluster"', f'host="{ips[0][:-2]}.$((i + 1))"'),
                     ("redis-cli -h redis-cluster-0.redis-cluster", f"redis-cli -h {ips[0]}"),
                     ("""ip=$(getent hosts "$host" | awk '{print $1; exit}')""", 'ip="$host"')):
        assert old in script, f"the Job's script changed: {old!r} is gone"
        script = script.replace(old, new)
    return script


def run_job(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-ec", script], env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": PASSWORD},
                          capture_output=True, text=True, timeout=120)


def test_cluster_from_the_manifests(nodes: list[str]) -> None:
    script = job_script(nodes)
    first = run_job(script)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "All 16384 slots covered" in first.stdout, first.stdout[-2000:]

    seeds = [redis.Redis(host=ip, port=6379, password=PASSWORD, socket_timeout=5) for ip in nodes]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        infos = [s.cluster("info") for s in seeds]
        # gossip: a node may say "ok" before it has met every other node (CI saw 5 of 6 known once)
        if all(str(i.get("cluster_state")) == "ok" and int(i["cluster_known_nodes"]) == 6 for i in infos):
            break
        time.sleep(0.2)
    assert all(str(i.get("cluster_state")) == "ok" for i in infos), infos
    assert {int(i["cluster_size"]) for i in infos} == {3}  # 3 masters, each with its replica
    assert {int(i["cluster_known_nodes"]) for i in infos} == {6}
    # each node announces the name it was given (here its address), which clients follow on MOVED
    # (CLUSTER NODES: "<id> <ip>:<port>@<bus>,<hostname> <flags> ...")
    lines = seeds[0].execute_command("CLUSTER", "NODES")
    text = lines.decode() if isinstance(lines, bytes) else str(lines)
    announced = {line.split()[1].split(",")[1] for line in text.strip().splitlines()}
    assert announced == set(nodes), text

    again = run_job(script)  # the Job again (a re-created Job, a retry): leaves the cluster alone
    assert again.returncode == 0, again.stderr
    assert "the cluster exists (6 nodes known): nothing to do" in again.stdout

    # the product's client with the overlay's kind of REDIS_URL (any seed node, password in the URL)
    client = connect(f"redis://:{PASSWORD}@{nodes[3]}:6379/0", cluster=True, socket_timeout=5)
    keys = [f"k8s-test:{{{sym}}}" for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT")]
    for i, key in enumerate(keys):
        client.set(key, str(i))
    assert [client.get(k) for k in keys] == [str(i).encode() for i in range(len(keys))]
    owners = {client.get_node_from_key(k).host for k in keys}  # type: ignore[attr-defined]
    assert len(owners) >= 2 and owners <= set(nodes)  # the keys live on different masters
