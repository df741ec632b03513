"""The default pools: `cpu` (one warm worker, up to 4) and `gpu` (from zero, one GPU per worker).

Platform admins change them afterwards (PATCH /api/v1/compute/pools/<name>/); CELLAR_POOLS, when
set, overrides them for the compiler and the dispatcher (pipelines/pools.py).
"""

from django.db import migrations

DEFAULTS = [
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


def create(apps, schema_editor):
    Pool = apps.get_model("compute", "Pool")
    for fields in DEFAULTS:
        Pool.objects.get_or_create(name=fields["name"], defaults=fields)


def remove(apps, schema_editor):
    Pool = apps.get_model("compute", "Pool")
    Pool.objects.filter(name__in=[d["name"] for d in DEFAULTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("compute", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
