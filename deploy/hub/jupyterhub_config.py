"""JupyterHub on Kubernetes for Cellar: sign-in and service account as in single-machine mode
(notebooks_ext/hub/jupyterhub_config.py, loaded first), servers from KubeSpawner instead.

Each user's server runs in its own pod, as uid 1000 (gid 100), without privilege escalation,
with a per-user volume. Profiles (the slugs Cellar's Workspace page sends as `profile`):

- cpu: 1-2 CPUs, 4-8 GiB;
- gpu: one NVIDIA GPU (`nvidia.com/gpu` limit: the cluster needs the NVIDIA device plugin or GPU
  Operator), scheduled on GPU nodes (node selector) that may carry the usual GPU taint (toleration).

Set in the hub's pod: CELLAR_API_URL (in-cluster Cellar), CELLAR_PUBLIC_URL, CELLAR_HUB_URL,
CELLAR_HUB_OAUTH_JSON and CELLAR_HUB_API_TOKEN (from Secrets), CELLAR_HOME (the hub's volume),
CELLAR_NOTEBOOK_IMAGE / CELLAR_NOTEBOOK_GPU_IMAGE (images with JupyterLab, the `cellar` SDK and
notebooks_ext installed), CELLAR_NOTEBOOK_NAMESPACE, CELLAR_GPU_NODE_SELECTOR (key=value).
"""

from __future__ import annotations

import os
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub's config loader defines it)

_here = Path(__file__).resolve()
_local = Path(
    os.environ.get("CELLAR_HUB_BASE_CONFIG", _here.parents[2] / "notebooks_ext" / "hub" / "jupyterhub_config.py")
)
load_subconfig(str(_local))  # noqa: F821  (sign-in, groups, Cellar's service account)

CPU_IMAGE = os.environ.get("CELLAR_NOTEBOOK_IMAGE", "ghcr.io/cellar/notebook:latest")
GPU_IMAGE = os.environ.get("CELLAR_NOTEBOOK_GPU_IMAGE", "ghcr.io/cellar/notebook-gpu:latest")
_gpu_key, _, _gpu_value = os.environ.get("CELLAR_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true").partition("=")

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = os.environ.get("CELLAR_NOTEBOOK_NAMESPACE", "cellar-notebooks")
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.args = []  # no --allow-root: pods never run as root
c.KubeSpawner.default_url = "/lab"
c.KubeSpawner.image = CPU_IMAGE
# Non-root in every pod: KubeSpawner sets runAsUser/runAsGroup and fsGroup; no privilege escalation,
# so the docker-stacks "start as root" features (NB_UID switching, GRANT_SUDO) stay off.
c.KubeSpawner.uid = 1000
c.KubeSpawner.gid = 100
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.allow_privilege_escalation = False
c.KubeSpawner.environment = {
    "CELLAR_URL": os.environ.get("CELLAR_API_URL", "http://cellar-web:8000"),
    "CELLAR_PUBLIC_URL": os.environ.get("CELLAR_PUBLIC_URL", ""),
    "CELLAR_TOKEN_FILE": "/home/jovyan/.cellar/token.json",
}
# A volume per user for their notebooks (and the kernel token file, mode 0600 inside it).
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{user_server}"
c.KubeSpawner.storage_capacity = os.environ.get("CELLAR_NOTEBOOK_STORAGE", "10Gi")
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-{user_server}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
c.KubeSpawner.start_timeout = 600  # a GPU node may have to be added by the cluster autoscaler first

c.KubeSpawner.profile_list = [
    {
        "display_name": "CPU",
        "slug": "cpu",
        "description": "2 CPUs, 8 GiB memory",
        "default": True,
        "kubespawner_override": {
            "image": CPU_IMAGE,
            "cpu_guarantee": 1.0,
            "cpu_limit": 2.0,
            "mem_guarantee": "4G",
            "mem_limit": "8G",
        },
    },
    {
        "display_name": "GPU",
        "slug": "gpu",
        "description": "1 NVIDIA GPU, 8 CPUs, 32 GiB memory",
        "kubespawner_override": {
            "image": GPU_IMAGE,
            "cpu_guarantee": 4.0,
            "cpu_limit": 8.0,
            "mem_guarantee": "16G",
            "mem_limit": "32G",
            "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "node_selector": {_gpu_key: _gpu_value},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
]
