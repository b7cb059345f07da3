"""qs_common.kube: a StatefulSet pod's SHARD=k/N, the size read from a (local, real) HTTP server answering the
Kubernetes API's StatefulSet path, the probes, and the entrypoint that exports SHARD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from qs_common import kube
from qs_common.partition import ShardSpec
from tests.conftest import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sa-token-123"


class Reported:
    """The size the API server below reports (the test changes it, as an autoscaler would)."""

    replicas: int | None = 2


class StatefulSetAPI(BaseHTTPRequestHandler):
    """GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name} as the API server answers it (the fields read)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = self.path.strip("/").split("/")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_error(401)
            return
        if parts[:4] != ["apis", "apps", "v1", "namespaces"] or parts[5] != "statefulsets":
            self.send_error(404)
            return
        spec = {} if Reported.replicas is None else {"replicas": Reported.replicas}
        body = json.dumps({"kind": "StatefulSet", "metadata": {"name": parts[6], "namespace": parts[4]},
                           "spec": spec}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatefulSetAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Reported.replicas = 2
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def size_from(url: str) -> Callable[[str], int]:
    return lambda name: kube.statefulset_replicas(url, "quant-stream", name, TOKEN, None)


def test_pod_ordinal() -> None:
    assert kube.pod_ordinal("analytics-0") == ("analytics", 0)
    assert kube.pod_ordinal("quant-stream-candles-12") == ("quant-stream-candles", 12)
    for bad in ("analytics", "analytics-", "-3", "analytics-x"):
        with pytest.raises(ValueError, match="not a StatefulSet pod name"):
            kube.pod_ordinal(bad)


def test_shard_count() -> None:
    assert kube.shard_count("4", lambda: 99) == 4
    assert kube.shard_count("replicas", lambda: 3) == 3
    with pytest.raises(ValueError, match="SHARD_COUNT must be a number or `replicas`"):
        kube.shard_count("many", lambda: 3)


def test_resolve_from_the_api(api: str) -> None:
    env = {"HOSTNAME": "analytics-1", "SHARD_COUNT": "replicas"}
    assert kube.resolve(env, size_from(api)) == ShardSpec(1, 2)
    Reported.replicas = 5
    assert str(kube.resolve(env, size_from(api))) == "1/5"
    Reported.replicas = None  # spec.replicas unset: the API's default, 1
    with pytest.raises(ValueError, match="shard index must be 0..0"):
        kube.resolve(env, size_from(api))
    assert kube.resolve({"HOSTNAME": "candles-2", "SHARD_COUNT": "3"}) == ShardSpec(2, 3)  # no API needed
    with pytest.raises(OSError):  # a wrong token: 401
        kube.statefulset_replicas(api, "quant-stream", "analytics", "wrong", None)


def test_replicas_outside_a_cluster_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs the Kubernetes API"):
        kube.resolve({"HOSTNAME": "analytics-0", "SHARD_COUNT": "replicas"})


def test_probe_shard_fails_after_a_resize(api: str, tmp_path: Path) -> None:
    environ = tmp_path / "environ"  # /proc/1/environ of a worker started as shard 1 of 2
    environ.write_bytes(b"PATH=/usr/bin\0SHARD=1/2\0HOSTNAME=analytics-1\0")
    env = {"HOSTNAME": "analytics-1", "SHARD_COUNT": "replicas"}
    assert kube.running_shard(env, environ) == ShardSpec(1, 2)
    assert kube.shard_changed(env, size_from(api), environ) is None
    Reported.replicas = 3
    assert kube.shard_changed(env, size_from(api), environ) == (
        "the set has 3 shards, this process runs as 1/2: restart with the new count")
    dead = f"http://127.0.0.1:{free_port()}"  # the API unreachable: no restart
    assert kube.shard_changed(env, size_from(dead), environ) is None
    assert kube.shard_changed({"HOSTNAME": "x-0"}, size_from(api), tmp_path / "none") is None  # not sharded
    assert kube.running_shard({}, tmp_path) is None  # unreadable (here a directory): no restart on its account


def test_probe_port_and_status(redis_server: RedisServer) -> None:
    assert kube.port_closed(redis_server.port) is None
    assert "does not accept connections" in (kube.port_closed(free_port()) or "")
    env = {"REDIS_URL": redis_server.url, "REDIS_CLUSTER": "false"}
    assert kube.status_missing("worker-analytics", env) == "no status:worker-analytics record"
    redis.Redis.from_url(redis_server.url).set("status:worker-analytics", "{}", ex=10)
    assert kube.status_missing("worker-analytics", env) is None
    down = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert (kube.status_missing("worker-analytics", down) or "").startswith("redis: ")
    cli = subprocess.run([sys.executable, "-m", "qs_common.kube", "probe", "--status", "ingest"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert (cli.returncode, cli.stderr.strip()) == (1, "no status:ingest record")


def entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/qs-entrypoint.sh as the image runs it (QS_USER/QS_DATA_DIR: this machine's user and a tmp folder)."""
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # `python` is the project's, as in the image
    full = {"PATH": path, "QS_USER": user, "QS_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(["sh", str(ROOT / "scripts" / "qs-entrypoint.sh"), "sh", "-c", 'echo "SHARD=$SHARD"'],
                          env=full, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_entrypoint_exports_the_shard(tmp_path: Path) -> None:
    done = entrypoint(tmp_path, HOSTNAME="candles-1", SHARD_COUNT="3")
    assert (done.returncode, done.stdout.strip()) == (0, "SHARD=1/3"), done.stderr
    kept = entrypoint(tmp_path, HOSTNAME="candles-1", SHARD_COUNT="3", SHARD="0/1")  # an explicit SHARD wins
    assert kept.stdout.strip() == "SHARD=0/1", kept.stderr
    plain = entrypoint(tmp_path, HOSTNAME="somehost")  # compose, make run: untouched
    assert plain.stdout.strip() == "SHARD=", plain.stderr
    bad = entrypoint(tmp_path, HOSTNAME="candles-4", SHARD_COUNT="3")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "qs-entrypoint: cannot tell this pod's shard: shard index must be 0..2, got 4"
