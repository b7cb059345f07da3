"""A worker pod's shard on Kubernetes (k8s/): SHARD=k/N from its StatefulSet, and the pods' probes.

A StatefulSet names its pods <set>-0 .. <set>-(R-1) and keeps each name (and volume) across restarts, so the
pod's ordinal is a stable shard index k. N comes from SHARD_COUNT: a number, or `replicas`, the set's current
spec.replicas read from the Kubernetes API with the pod's service account (k8s/base/rbac.yaml lets it `get` the two
sharded sets), so an autoscaler that resizes the set (KEDA, HPA) resizes N too.

A process keeps the N it started with. The liveness probe (`probe --shard`) fails once the set's size differs, so
the kubelet restarts each shard of a resized set with the new N within a probe period or two. A probe that cannot
reach the API counts the size as unchanged: an API outage must not restart every worker.

    python -m qs_common.kube shard      # prints k/N; scripts/qs-entrypoint.sh exports it as SHARD
    python -m qs_common.kube probe [--shard] [--port P] [--status NAME]   # exit 0 alive, else 1 and one line why

Standard library only for `shard` (it runs before every sharded worker starts); `--status` connects to Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import ssl
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from qs_common.partition import ShardSpec

ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_POD = re.compile(r"(.+)-(\d{1,4})")


def pod_ordinal(hostname: str) -> tuple[str, int]:
    """`analytics-3` -> ("analytics", 3): the StatefulSet's name and the pod's ordinal."""
    m = _POD.fullmatch(hostname)
    if m is None:
        raise ValueError(f"HOSTNAME {hostname[:60]!r} is not a StatefulSet pod name (<set>-<ordinal>)")
    return m.group(1), int(m.group(2))


def shard_count(text: str, replicas: Callable[[], int]) -> int:
    """SHARD_COUNT: a number, or `replicas` (the set's size, asked from the API only then)."""
    if text.strip().isdigit():
        return int(text)
    if text.strip() == "replicas":
        return replicas()
    raise ValueError(f"SHARD_COUNT must be a number or `replicas`, got {text[:40]!r}")


def statefulset_replicas(api_url: str, namespace: str, name: str, token: str, ca_file: str | None) -> int:
    """spec.replicas of a StatefulSet, from the Kubernetes API (GET .../statefulsets/{name})."""
    url = f"{api_url}/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        body = json.loads(resp.read())
    replicas = body.get("spec", {}).get("replicas", 1)  # the API's default when unset
    if not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"statefulset {name}: spec.replicas is {replicas!r}")
    return replicas


def in_cluster_replicas(name: str, env: Mapping[str, str]) -> int:
    """The set's size through the API server this pod runs under, with its service account."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (ACCOUNT / "token").exists():
        raise ValueError("SHARD_COUNT=replicas needs the Kubernetes API: no service host or account token here")
    if ":" in host:
        host = f"[{host}]"
    return statefulset_replicas(f"https://{host}:{port}", (ACCOUNT / "namespace").read_text().strip(), name,
                                (ACCOUNT / "token").read_text().strip(), str(ACCOUNT / "ca.crt"))


def resolve(env: Mapping[str, str], replicas: Callable[[str], int] | None = None) -> ShardSpec:
    """This pod's shard: k from HOSTNAME's ordinal, N from SHARD_COUNT (ValueError naming what is wrong)."""
    name, k = pod_ordinal(env.get("HOSTNAME") or socket.gethostname())
    ask = replicas or (lambda set_name: in_cluster_replicas(set_name, env))
    return ShardSpec(k, shard_count(env.get("SHARD_COUNT", ""), lambda: ask(name)))


def running_shard(env: Mapping[str, str], proc_environ: Path = Path("/proc/1/environ")) -> ShardSpec | None:
    """The shard the container's main process runs as: its SHARD (a probe does not inherit what the entrypoint
    exported, so it reads the process's environment)."""
    text = env.get("SHARD")
    if text is None:
        try:
            items = proc_environ.read_bytes().split(b"\0")
        except OSError:  # not there, or not ours to read: cannot tell, so no restart on its account
            return None
        text = next((i[len(b"SHARD="):].decode() for i in items if i.startswith(b"SHARD=")), None)
    return ShardSpec.parse(text) if text else None


def shard_changed(env: Mapping[str, str], replicas: Callable[[str], int] | None = None,
                  proc_environ: Path = Path("/proc/1/environ")) -> str | None:
    """Why the running shard is out of date (the set was resized), or None."""
    running = running_shard(env, proc_environ)
    if running is None:
        return None
    try:
        now = resolve(env, replicas)
    except (OSError, ValueError) as exc:  # the API unreachable: not the worker's fault
        print(f"kube: size not checked: {exc}", file=sys.stderr)
        return None
    if now.count != running.count:
        return f"the set has {now.count} shards, this process runs as {running}: restart with the new count"
    return None


def port_closed(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return None
    except OSError as exc:
        return f"port {port} does not accept connections: {exc}"


def status_missing(name: str, env: Mapping[str, str]) -> str | None:
    """The process's status record (status:NAME, rewritten every second with a 10 s TTL) is gone."""
    from pydantic import TypeAdapter

    from qs_common.keys import status_key
    from qs_common.redis_client import connect

    cluster = TypeAdapter(bool).validate_python(env.get("REDIS_CLUSTER", "false"))  # the settings' rule
    shard = running_shard(env)
    if shard is not None and not shard.whole:  # a shard k/N's record is NAME-{k}of{N} (worker/analytics_shard.py)
        name = f"{name}-{shard.index}of{shard.count}"
    try:
        client = connect(env.get("REDIS_URL", "redis://localhost:6379/0"), cluster, socket_timeout=3)
        return None if client.exists(status_key(name)) else f"no {status_key(name)} record"
    except Exception as exc:  # any Redis or connection error means "not alive" to a probe
        return f"redis: {exc}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qs_common.kube", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("shard", help="print this pod's SHARD (k/N)")
    probe = sub.add_parser("probe", help="exit 0 when alive, else 1 with one line why")
    probe.add_argument("--shard", action="store_true", help="the set's size is still this process's N")
    probe.add_argument("--port", type=int, help="this local TCP port accepts connections")
    probe.add_argument("--status", help="the status record status:NAME exists")
    args = p.parse_args(argv)
    env = os.environ
    if args.command == "shard":
        try:
            print(resolve(env))
        except (OSError, ValueError) as exc:
            print(f"qs-entrypoint: cannot tell this pod's shard: {exc}", file=sys.stderr)
            return 2
        return 0
    problem = ((args.shard and shard_changed(env)) or (args.port is not None and port_closed(args.port))
               or (args.status and status_missing(args.status, env)))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
