"""Cellar's Python SDK: `from cellar import Client`, and experiment tracking.

import cellar
with cellar.start_run(experiment="churn") as run:
    run.log_params({"lr": 0.01})
    run.log_metric("loss", 0.3, step=1)
"""

from cellar.client import CellarAPIError, Client
from cellar.data import connect, dataset, secret
from cellar.tracking import (
    ConfigurationError,
    Run,
    TrackingError,
    active_run,
    end_run,
    flush,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    login,
    logout,
    set_tag,
    set_tags,
    start_run,
)

__version__ = "0.1.0"
__all__ = [
    "CellarAPIError",
    "Client",
    "ConfigurationError",
    "Run",
    "TrackingError",
    "__version__",
    "active_run",
    "connect",
    "dataset",
    "end_run",
    "flush",
    "load_model",
    "load_task",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "login",
    "logout",
    "register_model",
    "secret",
    "set_tag",
    "set_tags",
    "start_run",
    "track",
]


def __getattr__(name: str):
    # `cellar.load_task` is imported on first use: `import cellar` stays as light as it was.
    if name == "load_task":
        from cellar.pipelines.load_task import load_task

        return load_task
    if name in ("register_model", "load_model", "score_batch"):  # the registry: numpy/pandas load lazily too
        from cellar import registry

        return getattr(registry, name)
    if name in ("track", "flush_tracked"):  # A/B-test outcomes (cellar.abstats.track)
        from cellar.abstats import track as _track

        return getattr(_track, name)
    raise AttributeError(f"module 'cellar' has no attribute {name!r}")
