"""`make k8s`: every overlay renders and validates, and broken manifests are rejected with a line naming them.

Runs k8s/validate.py exactly as `make k8s` does (kubectl kustomize from the virtual environment, the Kubernetes
OpenAPI schemas of kubernetes-validate, KEDA's CRD models); nothing is skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALIDATE = ROOT / "k8s" / "validate.py"


def run_validate(*overlays: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, str(VALIDATE), *map(str, overlays)], capture_output=True, text=True,
                          timeout=280, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr


def test_every_overlay_renders_and_validates() -> None:
    rc, out = run_validate()
    assert rc == 0, out
    overlays = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
    counts = {name: int(n) for name, n in re.findall(r"^k8s: (\S+): (\d+) objects, 0 problems, ok", out, re.M)}
    assert sorted(counts) == overlays, out
    # the base's workloads and the pieces each overlay adds are all there
    assert counts["local"] >= 20
    assert counts["autoscale-keda"] == counts["local"] + 2  # ScaledObject, NetworkPolicy (KEDA -> worker API)
    assert counts["autoscale-hpa"] == counts["local"] + 1


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of k8s/ with one mistake of each kind the validator must catch."""
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s, ignore=shutil.ignore_patterns("__pycache__"))
    base, keda = k8s / "base", k8s / "components" / "keda"
    edit(base / "ingest.yaml", "  replicas: 1\n", "  replicas: 1\n  replica: 1\n")  # unknown field
    edit(base / "dashboard.yaml", "containerPort: 8501", 'containerPort: "8501"')  # wrong type
    edit(base / "book.yaml", "limits: {cpu: 500m, memory: 512Mi}", "limits: {cpu: 500m}")
    edit(base / "pdb.yaml", "component: dashboard", "component: dashbord")
    edit(base / "analytics.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    edit(base / "analytics.yaml", "              value: replicas", '              value: "2"')
    edit(keda / "scaledobject.yaml", "  cooldownPeriod: 300\n", "  cooldownPeriod: 300\n  coolDownPeriod: 60\n")
    edit(keda / "scaledobject.yaml", "valueLocation: analytics_lag", "valueLocaton: analytics_lag")
    # a short host name resolves in KEDA's namespace, not ours; and a field GET /lag does not answer
    edit(keda / "scaledobject.yaml", "url: http://api.quant-stream.svc.cluster.local:8000/lag\n"
         "        valueLocation: analytics_pending",
         "url: http://api:8000/lag\n        valueLocation: analytics_pendng")
    edit(keda / "scaledobject.yaml", "  minReplicaCount: 1", '  minReplicaCount: "one"')
    edit(base / "redis.yaml", '"$(REDIS_PASSWORD)"]', '"$(REDIS_PASWORD)"]')  # would be a literal password
    edit(base / "candles.yaml", "serviceName: candles", "serviceName: candle")
    edit(base / "book.yaml", "name: settings", "name: setting")
    edit(k8s / "components" / "redis-cluster" / "cluster-create-job.yaml", "; do echo", "; echo")
    both = k8s / "overlays" / "both"  # KEDA and the HPA at once, and no namespace for what they add
    both.mkdir()
    (both / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../local\n"
        "components:\n  - ../../components/hpa\n")
    return k8s


def test_broken_manifests_are_rejected(broken: Path) -> None:
    rc, out = run_validate(*(broken / "overlays" / name for name in ("autoscale-keda", "both", "local-cluster")))
    assert rc == 1, out
    expected = [
        r"autoscale-keda: Deployment/ingest: Kubernetes 1\.29\.0 schema: spec: Additional properties .*'replica'",
        r"autoscale-keda: Deployment/ingest: Kubernetes 1\.37\.0 schema: spec: Additional properties .*'replica'",
        r"autoscale-keda: Deployment/dashboard: Kubernetes 1\.\d+\.0 schema: spec\.template\.spec\.containers\.0"
        r"\.ports\.0\.containerPort: '8501' is not of type 'integer'",
        r"autoscale-keda: Deployment/book: container book: resources\.limits lacks memory",
        r"autoscale-keda: PodDisruptionBudget/dashboard: selector .*dashbord.* matches no pod template",
        r"autoscale-keda: StatefulSet/analytics: container analytics: readOnlyRootFilesystem is not true",
        r"autoscale-keda: ScaledObject/analytics: KEDA CRD schema: spec\.minReplicaCount: Input should be a valid "
        r"integer",
        r"autoscale-keda: ScaledObject/analytics: spec\.triggers\.0: metrics-api: unknown parameter 'valueLocaton'",
        r"autoscale-keda: ScaledObject/analytics: spec\.triggers\.0: metrics-api: needs valueLocation",
        r"autoscale-keda: ScaledObject/analytics: spec\.triggers\.1: metrics-api: GET /lag has no field "
        r"'analytics_pendng'",
        r"autoscale-keda: ScaledObject/analytics: spec\.triggers\.1: url 'http://api:8000/lag' names no Service "
        r"port of this overlay",
        r"both: HorizontalPodAutoscaler/analytics: StatefulSet/analytics is autoscaled but its SHARD_COUNT is fixed",
        r"both: HorizontalPodAutoscaler/analytics: namespace None",
        r"autoscale-keda: StatefulSet/redis: container redis: args uses \$\(REDIS_PASWORD\), not in its env",
        r"autoscale-keda: StatefulSet/candles: serviceName 'candle' names no headless Service",
        r"autoscale-keda: Deployment/book: reads ConfigMap 'setting', which is not in this overlay",
        r"local-cluster: Job/redis-cluster-create: container create: script does not parse",
        r"k8s: autoscale-keda: \d+ objects, \d+ problems, FAILED",
    ]
    for pattern in expected:
        assert re.search(pattern, out, re.M), f"{pattern}\n---\n{out}"


def test_unknown_scaledobject_field_and_two_autoscalers(broken: Path) -> None:
    """The type error above hides the unknown field (the model stops at the first type error): fix it and see."""
    edit(broken / "components" / "keda" / "scaledobject.yaml", '  minReplicaCount: "one"', "  minReplicaCount: 1")
    (broken / "overlays" / "both" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: quant-stream\n"
        "resources:\n  - ../local\ncomponents:\n  - ../../components/keda\n  - ../../components/hpa\n")
    rc, out = run_validate(broken / "overlays" / "both")
    assert rc == 1, out
    assert re.search(r"ScaledObject/analytics: KEDA CRD schema: spec\.coolDownPeriod: unknown field", out), out
    assert re.search(r"HorizontalPodAutoscaler/analytics: StatefulSet/analytics is also scaled by "
                     r"ScaledObject/analytics", out), out


def test_a_render_error_is_reported(tmp_path: Path) -> None:
    overlay = tmp_path / "missing"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - nothing-here.yaml\n")
    rc, out = run_validate(overlay)
    assert rc == 1
    assert re.search(r"^missing: kustomize: .*nothing-here\.yaml", out, re.M), out


def test_shards_need_per_symbol_streams_and_their_own_address(tmp_path: Path) -> None:
    """The StatefulSets run 2 shards each: on the single tick stream the worker refuses SHARD=k/2, and a candle
    shard advertising 0.0.0.0 (API_HOST) cannot be forwarded to. Both are caught; REDIS_CLUSTER=true is enough."""
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s, ignore=shutil.ignore_patterns("__pycache__"))
    edit(k8s / "base" / "kustomization.yaml", "      - TICK_PARTITIONING=symbol\n", "")
    edit(k8s / "base" / "candles.yaml", "value: http://$(POD_NAME).candles:8000", "value: http://0.0.0.0:8000")
    rc, out = run_validate(k8s / "overlays" / "local", k8s / "overlays" / "local-cluster")
    assert rc == 1, out
    for name in ("candles", "analytics"):
        assert re.search(rf"^local: StatefulSet/{name}: container {name}: sharded \(SHARD_COUNT=replicas\) but "
                         r"neither TICK_PARTITIONING=symbol nor REDIS_CLUSTER=true", out, re.M), out
    assert re.search(r"^local: StatefulSet/candles: container candles: API_ADVERTISE_URL 'http://0\.0\.0\.0:8000' "
                     r"is not http://\$\(POD_NAME\)\.candles:8000", out, re.M), out
    assert not re.search(r"^local-cluster: .*sharded", out, re.M), out  # REDIS_CLUSTER=true forces symbol streams
    assert re.search(r"^local-cluster: StatefulSet/candles: .*API_ADVERTISE_URL", out, re.M), out
