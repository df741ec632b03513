"""The step cache: a step whose code, inputs, parameters and environment were seen before
reuses that task's outputs by pointer (ARCHITECTURE.md, "Artifacts").

Key = sha256 of (Step.code_hash(), each input's hash, the foreach item's hash, the values of
the parameters the step reads, the environment hash). Entries are small JSON files beside
the store, `cache/<key[:2]>/<key>.json`; a hit whose blobs are gone is a miss.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cellar.artifacts.base import ArtifactStore
from cellar.pipelines.execute import ArtifactRef, is_stored
from cellar.pipelines.spec import Environment, Step, sha256_json


def cacheable(step: Step) -> bool:
    """Whether a step's results may be reused: not when tagged `cache:off`, and not when it has
    no outputs. Such a step exists for its side effects (printing a report, logging to the
    tracking server, writing a file), which a cache hit would silently skip."""
    return step.cache and bool(step.outputs)


def environment_hash(environment: Environment) -> str:
    return sha256_json({"python": environment.python, "lock": environment.lock, "modules": environment.modules})


def cache_key(
    step: Step,
    *,
    inputs: dict[str, ArtifactRef | list[ArtifactRef]],
    item: ArtifactRef | None,
    parameters: dict[str, Any],
    environment: str,
    unread: str | None = None,
) -> str | None:
    """The task's cache key, or None when it cannot have one (a parameter value that is not JSON).

    `unread`: a foreach iterable the step's code does not read (its item is in the key instead).
    """
    hashes = {
        name: [r.sha256 for r in ref] if isinstance(ref, list) else ref.sha256 for name, ref in sorted(inputs.items())
    }
    try:
        return sha256_json(
            {
                "code": step.code_hash(),
                "inputs": hashes,
                "item": item.sha256 if item is not None else None,
                "parameters": {name: parameters.get(name) for name in step.parameters if name != unread},
                "environment": environment,
            }
        )
    except (TypeError, ValueError):
        return None


class StepCache:
    def __init__(self, root: Path, store: ArtifactStore, team: str):
        self.root = root
        self.store = store
        self.team = team

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, ArtifactRef] | None:
        try:
            entry = json.loads(self._path(key).read_text())
            outputs = {name: ArtifactRef.from_dict(ref) for name, ref in entry["outputs"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(is_stored(ref, store=self.store, team=self.team) for ref in outputs.values()):
            return None
        return outputs

    def put(self, key: str, outputs: dict[str, ArtifactRef], *, run: str, step: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"outputs": {n: r.to_dict() for n, r in sorted(outputs.items())}, "run": run, "step": step}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle)
        os.replace(tmp, path)
