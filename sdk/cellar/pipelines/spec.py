"""The canonical pipeline spec: what the compiler produces, what a version's id hashes,
what the local runner and the engine execute (ARCHITECTURE.md, "Versions are content-addressed").

A spec has two halves:

* the **canonical** part (`PipelineSpec.canonical()`): steps' code, tags and resources,
  parameters and their defaults, the environment lock, the Python version and the spec
  format version. Its sha256 over canonical JSON is the version id. Nothing that merely
  says *where* the code came from is in it, so moving a markdown cell, renaming the
  notebook or re-running it does not make a new version;
* the **source map** (`PipelineSpec.source`): for each step, the notebook cells and line
  offsets it came from. Errors, the diff page and "reopen in a notebook" use it.

Step code is kept as the user wrote it (line endings, trailing blanks and indentation of
the whole cell normalised) so a diff between versions reads like the notebook.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1

STEP_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Foreach:
    """`foreach:<iterable>[:<item>]`: the step (and every step after it up to the `join`)
    runs once per element of `iterable`, with the element bound to `item`."""

    iterable: str
    item: str = "item"


@dataclass(frozen=True)
class Resources:
    pool: str = "cpu"
    cpu: float = 1.0
    memory: int | None = None  # bytes
    gpu: int = 0


@dataclass(frozen=True)
class Step:
    name: str
    # The step's own code (its cells joined by a blank line), magics removed.
    code: str
    # Code run before `code` in the step's process: the notebook's `imports` and
    # `functions` cells, then the import statements and function/class definitions from
    # other cells that this step uses. Kept apart from `code` so the diff shows them apart.
    prelude: str = ""
    # name -> the step that produces it (nearest producer in notebook order).
    inputs: dict[str, str] = field(default_factory=dict)
    # Names this step binds (or mutates) that a later step reads, sorted.
    outputs: list[str] = field(default_factory=list)
    # Explicit `prev:` edges plus inferred data edges, sorted.
    upstream: list[str] = field(default_factory=list)
    # Parameters the step reads (they are injected, not passed as data), sorted.
    parameters: list[str] = field(default_factory=list)
    # Top-level modules the step imports (prelude included), sorted: the environment check.
    imports: list[str] = field(default_factory=list)
    foreach: Foreach | None = None
    # Set on the steps between a `foreach:` step and its `join` (inclusive of the foreach
    # step itself): the name of the step that opened the fan-out.
    branch_of: str | None = None
    join: bool = False
    resources: Resources = field(default_factory=Resources)
    retry: int = 0
    timeout: int | None = None  # seconds
    cache: bool = True
    # At most this many tasks of the step in flight at once, per run (None: the pool decides).
    concurrency: int | None = None
    # The cell tags as written, sorted (shown in the diff; part of the hash).
    tags: list[str] = field(default_factory=list)

    def code_hash(self) -> str:
        """The step-cache component for code: prelude + code + how it runs."""
        payload = {k: v for k, v in _plain(self).items() if k not in ("upstream",)}
        return sha256_json(payload)


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any  # JSON value (ast.literal_eval of the cell, converted: tuples -> lists)
    type: str  # "int" | "float" | "str" | "bool" | "list" | "dict" | "none"


@dataclass(frozen=True)
class Environment:
    python: str  # "3.11"
    # Normalised distribution name (PEP 503) -> version, for every installed distribution.
    lock: dict[str, str] = field(default_factory=dict)
    # Top-level module the steps import -> the distribution that provides it (only the
    # modules the steps import; stdlib modules are absent). Lets the server check a pool
    # that names distributions, not modules.
    modules: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSource:
    """Where a step came from: notebook cell indices (0-based, all cells counted) and, for
    each, the line in `Step.code` where that cell's code starts (1-based)."""

    cells: list[int]
    first_lines: list[int]
    # For each cell, the cell line (1-based) of each of its code lines: dropped display
    # magics and leading blank lines make these differ from a plain offset. Optional so
    # specs written before it existed still load.
    cell_lines: list[list[int]] = field(default_factory=list)


@dataclass
class PipelineSpec:
    steps: list[Step]
    parameters: list[Parameter] = field(default_factory=list)
    environment: Environment = field(default_factory=lambda: Environment(python=""))
    format: int = FORMAT_VERSION
    # Not hashed: provenance.
    source: dict[str, StepSource] = field(default_factory=dict)
    notebook: str = ""  # the file name it was compiled from, if any

    # --- identity -------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The hashed content, as plain JSON-ready data with a fixed key order."""
        return {
            "format": self.format,
            "python": self.environment.python,
            "environment": dict(sorted(self.environment.lock.items())),
            "modules": dict(sorted(self.environment.modules.items())),
            "parameters": [_plain(p) for p in self.parameters],
            "steps": [_plain(s) for s in self.steps],
        }

    def content_hash(self) -> str:
        """The version id: sha256 of the canonical JSON."""
        return sha256_json(self.canonical())

    # --- (de)serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = self.canonical()
        data["source"] = {name: asdict(src) for name, src in sorted(self.source.items())}
        data["notebook"] = self.notebook
        data["hash"] = self.content_hash()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported pipeline spec format {data.get('format')!r} (this SDK reads {FORMAT_VERSION})"
            )
        steps = []
        for raw in data["steps"]:
            raw = dict(raw)
            raw["foreach"] = Foreach(**raw["foreach"]) if raw.get("foreach") else None
            raw["resources"] = Resources(**raw.get("resources") or {})
            steps.append(Step(**raw))
        return cls(
            steps=steps,
            parameters=[Parameter(**p) for p in data.get("parameters", [])],
            environment=Environment(
                python=data.get("python", ""),
                lock=dict(data.get("environment", {})),
                modules=dict(data.get("modules", {})),
            ),
            format=data["format"],
            source={name: StepSource(**src) for name, src in (data.get("source") or {}).items()},
            notebook=data.get("notebook", ""),
        )

    # --- navigation ---------------------------------------------------------------------

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def edges(self) -> list[tuple[str, str]]:
        return [(up, step.name) for step in self.steps for up in step.upstream]

    def parameter_defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, UTF-8 kept: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def _plain(value: Any) -> dict[str, Any]:
    return asdict(value)


@dataclass(frozen=True)
class PoolOffer:
    """What a pool's workers can give one task; the compiler refuses a step that asks for
    more, or for a pool that does not exist."""

    name: str
    cpu: float
    memory: int | None = None  # bytes; None = not limited
    gpu: int = 0
