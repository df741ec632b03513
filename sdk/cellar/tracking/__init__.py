"""Experiment tracking: `with cellar.start_run(experiment="churn") as run: run.log_metric(...)`.

See docs/sdk.md. Logging calls only enqueue; a background thread sends batches to the
team's MLflow-compatible API, surviving server restarts; offline runs wait in a local
folder for `cellar sync`.
"""

from cellar.tracking.errors import ConfigurationError, TrackingError
from cellar.tracking.run import (
    Run,
    active_run,
    end_run,
    flush,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)
from cellar.tracking.session import Session, login, logout
from cellar.tracking.sync import SyncResult, sync_runs

__all__ = [
    "ConfigurationError",
    "Run",
    "Session",
    "SyncResult",
    "TrackingError",
    "active_run",
    "end_run",
    "flush",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "login",
    "logout",
    "set_tag",
    "set_tags",
    "start_run",
    "sync_runs",
]
