"""Notebook -> pipeline: the compiler, the canonical spec, serializers and the local runner.

Pure Python, no Django: the server, the workers, the notebook extension and the `cellar`
CLI all use this same code (ARCHITECTURE.md, "Dependency direction").
"""

from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.spec import (
    FORMAT_VERSION,
    Environment,
    Foreach,
    Parameter,
    PipelineSpec,
    PoolOffer,
    Resources,
    Step,
    StepSource,
)

__all__ = [
    "FORMAT_VERSION",
    "CompileError",
    "Environment",
    "Foreach",
    "Parameter",
    "PipelineSpec",
    "PoolOffer",
    "Problem",
    "Resources",
    "Step",
    "StepSource",
]
