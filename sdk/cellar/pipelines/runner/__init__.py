"""The local runner: a compiled pipeline on this machine, no platform needed."""

from cellar.pipelines.runner.local import LocalRun, default_directory, default_workers, run_pipeline
from cellar.pipelines.runner.parameters import ParameterError, parse_assignments, resolve_parameters
from cellar.pipelines.runner.plan import Task

__all__ = [
    "LocalRun",
    "ParameterError",
    "Task",
    "default_directory",
    "default_workers",
    "parse_assignments",
    "resolve_parameters",
    "run_pipeline",
]
