"""The Kubernetes hub configuration loads on top of the single-machine one and asks for what the
issue says: CPU and GPU profiles (nvidia.com/gpu limit, node selector, toleration), non-root pods."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HUB_PYTHON = REPO / ".venv-hub" / "bin" / "python"

LOADER = """
import json, sys
from traitlets.config.loader import PyFileConfigLoader
config = PyFileConfigLoader(sys.argv[1]).load_config()
k = config.KubeSpawner
print(json.dumps({
    "spawner": config.JupyterHub.spawner_class,
    "authenticator": config.JupyterHub.authenticator_class.__name__,
    "services": [s["name"] for s in config.JupyterHub.services],
    "profiles": k.profile_list, "uid": k.uid, "gid": k.gid, "fs_gid": k.fs_gid,
    "escalation": k.allow_privilege_escalation, "args": k.args,
}))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    if not HUB_PYTHON.exists():
        pytest.fail("the hub's environment is missing: run `make hub-install`", pytrace=False)
    env = {
        "PATH": "/usr/bin:/bin",
        "CELLAR_HOME": str(tmp_path_factory.mktemp("hub")),
        "CELLAR_HUB_OAUTH_JSON": json.dumps({"client_id": "x", "client_secret": "y"}),
        "CELLAR_HUB_API_TOKEN": "t",
    }
    out = subprocess.run(
        [str(HUB_PYTHON), "-c", LOADER, str(REPO / "deploy" / "hub" / "jupyterhub_config.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_kubespawner_replaces_the_local_spawner_and_keeps_cellar_sign_in(loaded):
    assert loaded["spawner"] == "kubespawner.KubeSpawner"
    assert loaded["authenticator"] == "CellarAuthenticator"
    assert loaded["services"] == ["cellar"]
    assert "--allow-root" not in loaded["args"]


def test_profiles_match_cellars_and_the_gpu_one_asks_for_a_gpu_node(loaded):
    from django.conf import settings

    profiles = {p["slug"]: p for p in loaded["profiles"]}
    assert set(profiles) == {p["slug"] for p in settings.CELLAR_WORKSPACE_PROFILES} == {"cpu", "gpu"}
    gpu = profiles["gpu"]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert "nvidia.com/gpu" not in json.dumps(profiles["cpu"])


def test_pods_run_as_non_root_without_privilege_escalation(loaded):
    assert (loaded["uid"], loaded["gid"], loaded["fs_gid"], loaded["escalation"]) == (1000, 100, 100, False)
