"""Run one step: the executor core shared by the local runner and the pool executors.

A pure function of its inputs (a step, parameter values, artifact references, a store):
no processes, no scheduling, no platform. Order, as ARCHITECTURE.md fixes it:

    parameters -> prelude -> inputs loaded -> foreach item bound -> code -> outputs serialized

The step runs in a fresh module installed as ``sys.modules["__main__"]`` while it runs, so
classes and functions it defines pickle as ``__main__.Name`` and load again in a later
step whose prelude defines them, exactly as in the notebook's kernel. The previous
``__main__`` is put back afterwards.
"""

from cellar.pipelines.execute.failure import Frame, StepFailed, code_filename
from cellar.pipelines.execute.refs import (
    INLINE_MAX_BYTES,
    ArtifactRef,
    InputRef,
    OutputRef,
    StepResult,
    is_stored,
    load_artifact,
    store_value,
)
from cellar.pipelines.execute.step import StepTimeout, evaluate_foreach, execute_step, expand_foreach, reads_iterable

__all__ = [
    "INLINE_MAX_BYTES",
    "ArtifactRef",
    "Frame",
    "InputRef",
    "OutputRef",
    "StepFailed",
    "StepResult",
    "StepTimeout",
    "code_filename",
    "evaluate_foreach",
    "execute_step",
    "expand_foreach",
    "is_stored",
    "load_artifact",
    "reads_iterable",
    "store_value",
]
