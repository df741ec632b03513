"""The default pools: `cpu` (one warm worker, up to 4) and `gpu` (from zero, one GPU per worker).

Migration 0002 creates them (with its own copy of these values, as migrations must); tests and
`pools_ensure_defaults` use this one (a transactional test's flush removes migration data).
"""

from __future__ import annotations

DEFAULT_POOLS = [
    {"name": "cpu", "min_workers": 1, "max_workers": 4, "concurrency": 1, "gpus": 0},
    {
        "name": "gpu",
        "min_workers": 0,
        "max_workers": 1,
        "concurrency": 1,
        "gpus": 1,
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
]
