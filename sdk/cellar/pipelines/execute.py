"""Run one step: the executor core shared by the local runner and the pool executors.

A pure function of its inputs (a step, parameter values, artifact references, a store):
no processes, no scheduling, no platform. Order, as ARCHITECTURE.md fixes it:

    parameters -> prelude -> inputs loaded -> foreach item bound -> code -> outputs serialized

The step runs in a fresh module installed as ``sys.modules["__main__"]`` while it runs, so
classes and functions it defines pickle as ``__main__.Name`` and load again in a later
step whose prelude defines them, exactly as in the notebook's kernel. The previous
``__main__`` is put back afterwards.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import linecache
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cellar.artifacts.base import ArtifactStore
from cellar.pipelines.serializers import SerializationError, deserialize, serialize, type_name
from cellar.pipelines.spec import Step, StepSource


@dataclass(frozen=True)
class ArtifactRef:
    """A value in the content-addressed store: what a task records per name."""

    sha256: str
    serializer: str
    size: int | None = None
    type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(**data)


# The same record seen from either side of a step.
InputRef = ArtifactRef
OutputRef = ArtifactRef


@dataclass
class StepResult:
    outputs: dict[str, ArtifactRef]
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class Frame:
    """One frame of user code. `cell` is the notebook cell index, "prelude" for the prelude,
    None when unknown; `cell_line` is 1-based within that cell (or within the prelude)."""

    function: str
    line: int  # in the step's code (or prelude)
    cell: int | str | None
    cell_line: int | None
    text: str = ""


class StepFailed(Exception):
    """A step did not complete. Carries what a person needs to find the failing line: the
    step, the exception, the user-code frames and the notebook cell and line."""

    def __init__(
        self,
        step: str,
        exc_type: str,
        message: str,
        *,
        phase: str = "code",
        frames: list[Frame] | None = None,
        cell: int | str | None = None,
        line: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ):
        self.step = step
        self.exc_type = exc_type
        self.message = message
        self.phase = phase  # parameters | prelude | inputs | code | outputs
        self.frames = list(frames or [])
        self.cell = cell
        self.line = line
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(self.summary())

    def location(self) -> str:
        """`cell 4, line 2`; a failure inside a prelude function (an `imports` / `functions`
        cell) also names the step's own line that called into it."""
        parts = []
        if self.cell == "prelude":
            caller = next((f for f in reversed(self.frames) if isinstance(f.cell, int)), None)
            if caller is not None:
                parts.append(f"cell {caller.cell}, line {caller.cell_line}")
            inner = self.frames[-1].function if self.frames else ""
            inside = f" in {inner}()" if inner and inner != "<module>" else ""
            parts.append(f"prelude line {self.line}{inside}" if self.line is not None else "prelude")
            return ", ".join(parts)
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def where(self) -> str:
        location = self.location()
        return f"step '{self.step}', {location}" if location else f"step '{self.step}'"

    def summary(self) -> str:
        return f"{self.where()}: {self.exc_type}: {self.message}"

    def format_traceback(self) -> str:
        """The user-code traceback, each frame named by cell and line."""
        if not self.frames:
            return ""
        lines = ["Traceback (user code, most recent call last):"]
        for frame in self.frames:
            if frame.cell == "prelude":
                where = f"prelude, line {frame.cell_line}"
            elif frame.cell is not None:
                where = f"cell {frame.cell}, line {frame.cell_line}"
            else:
                where = f"line {frame.line}"
            lines.append(f"  {where}, in {frame.function}")
            if frame.text:
                lines.append(f"    {frame.text}")
        lines.append(f"{self.exc_type}: {self.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "exc_type": self.exc_type,
            "message": self.message,
            "phase": self.phase,
            "frames": [asdict(f) for f in self.frames],
            "cell": self.cell,
            "line": self.line,
            "traceback": self.format_traceback(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, stdout: str = "", stderr: str = "") -> StepFailed:
        return cls(
            data["step"],
            data["exc_type"],
            data["message"],
            phase=data.get("phase", "code"),
            frames=[Frame(**f) for f in data.get("frames", [])],
            cell=data.get("cell"),
            line=data.get("line"),
            stdout=stdout,
            stderr=stderr,
        )

    def __reduce__(self):  # keyword arguments do not survive Exception's default pickling
        return (_rebuild_step_failed, (self.to_dict(), self.stdout, self.stderr))


def _rebuild_step_failed(data: dict[str, Any], stdout: str, stderr: str) -> StepFailed:
    return StepFailed.from_dict(data, stdout=stdout, stderr=stderr)


def code_filename(step: str, part: str = "code") -> str:
    """The pseudo file name user code is compiled under: readable in any traceback."""
    return f"<step:{step}>" if part == "code" else f"<step:{step}:{part}>"


def expand_foreach(value: Any) -> list[Any]:
    """The elements a `foreach:` fans out over, in order: `list(value)`.

    Strings and bytes are refused: iterating over characters is almost always a mistake.
    """
    if isinstance(value, str | bytes | bytearray):
        raise TypeError(
            f"foreach got a {type(value).__name__} ({value[:40]!r}); iterating over its characters is almost "
            f"certainly not meant: put it in a list ([...]) or split it first"
        )
    try:
        return list(value)
    except TypeError:
        raise TypeError(
            f"foreach needs something to iterate over (a list, range, dict, array...); got a {type_name(value)}"
        ) from None


def reads_iterable(step: Step) -> bool:
    """Whether a foreach step's code (or prelude) reads the iterable itself, not just its item.

    When it does not, a branch needs neither the whole iterable loaded nor its hash in the
    cache key: the item is all it sees, so adding an element to a grid reruns only the new one.
    """
    if step.foreach is None:
        return False
    iterable = step.foreach.iterable
    for text in (step.code, step.prelude):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return True  # cannot tell: assume it does
        if any(isinstance(node, ast.Name) and node.id == iterable for node in ast.walk(tree)):
            return True
    return False


class _Capture(io.TextIOBase):
    """Collects what the step prints; optionally forwards each write (live logs)."""

    def __init__(self, stream: str, forward: Callable[[str, str], None] | None):
        self.stream = stream
        self.parts: list[str] = []
        self.forward = forward

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        if self.forward is not None:
            self.forward(self.stream, text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


def _map_line(line: int, source: StepSource | None) -> tuple[int | None, int | None]:
    """A line of `Step.code` -> (notebook cell, line within that cell)."""
    if source is None or not source.first_lines:
        return None, None
    index = None
    for i, first in enumerate(source.first_lines):
        if first <= line:
            index = i
    if index is None:
        return None, None
    return source.cells[index], line - source.first_lines[index] + 1


def _user_frames(step: str, tb: types.TracebackType | None, source: StepSource | None) -> list[Frame]:
    code_file, prelude_file = code_filename(step), code_filename(step, "prelude")
    frames = []
    for summary in traceback.extract_tb(tb):
        if summary.filename == code_file:
            cell, cell_line = _map_line(summary.lineno or 0, source)
        elif summary.filename == prelude_file:
            cell, cell_line = "prelude", summary.lineno
        else:
            continue
        frames.append(Frame(summary.name, summary.lineno or 0, cell, cell_line, (summary.line or "").strip()))
    return frames


def _compile(text: str, filename: str) -> types.CodeType:
    # linecache lets tracebacks (and debuggers) show the user's lines for the pseudo file.
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    return compile(text, filename, "exec", dont_inherit=True)


def _failure(step: Step, exc: BaseException, phase: str, source: StepSource | None) -> StepFailed:
    frames = _user_frames(step.name, exc.__traceback__, source)
    cell: int | str | None = None
    line: int | None = None
    if isinstance(exc, SyntaxError) and exc.filename in (code_filename(step.name), code_filename(step.name, "prelude")):
        # A syntax error has no frame: its position is on the exception itself.
        if exc.filename == code_filename(step.name):
            cell, line = _map_line(exc.lineno or 0, source)
        else:
            cell, line = "prelude", exc.lineno
        text = (exc.text or "").strip()
        frames = [Frame("<module>", exc.lineno or 0, cell, line, text)]
        message = exc.msg
    else:
        message = str(exc)
        if frames:
            cell, line = frames[-1].cell, frames[-1].cell_line
    if cell is None and phase == "foreach" and source is not None and source.cells:
        cell = source.cells[0]  # the foreach tag sits on the step's first cell
    if isinstance(exc, SystemExit):
        message = f"the step called exit({exc.code!r}); a step ends by reaching its last line"
    return StepFailed(step.name, type(exc).__name__, message, phase=phase, frames=frames, cell=cell, line=line)


def execute_step(
    step: Step,
    *,
    parameters: dict[str, Any],
    inputs: dict[str, ArtifactRef | list[ArtifactRef]],
    item: ArtifactRef | None,
    store: ArtifactStore,
    team: str,
    source: StepSource | None,
    on_output: Callable[[str, str], None] | None = None,
) -> StepResult:
    """Run `step` and store its outputs; raise `StepFailed` if anything goes wrong.

    `parameters` holds the run's resolved values (defaults already overridden); only those
    the step reads are injected. `inputs` maps each input name to its artifact, or to a list
    of artifacts (a join). `item` is the foreach element for a `foreach:` step.
    `on_output(stream, text)` sees prints as they happen; they are also returned.
    """
    started = time.monotonic()

    def work(namespace: dict[str, Any], phase: list[str]) -> dict[str, ArtifactRef]:
        _bind(step, namespace, phase, parameters, inputs, store, team)
        if item is not None:
            if step.foreach is None:
                raise ValueError(f"step '{step.name}' is not a foreach step but was given an item")
            namespace[step.foreach.item] = _load_input(step.foreach.item, item, store, team)
        phase[0] = "code"
        exec(_compile(step.code, code_filename(step.name)), namespace)
        phase[0] = "outputs"
        return _store_outputs(step, namespace, store, team)

    outputs, out, err = _run_in_module(step, source, on_output, work)
    return StepResult(outputs, out, err, time.monotonic() - started)


def evaluate_foreach(
    step: Step,
    *,
    parameters: dict[str, Any],
    inputs: dict[str, ArtifactRef | list[ArtifactRef]],
    store: ArtifactStore,
    team: str,
    source: StepSource | None = None,
) -> list[ArtifactRef]:
    """Evaluate a foreach step's iterable once and store each element as a blob, in order.

    The iterable is evaluated after parameters, prelude and inputs (in the step's own module,
    so elements of classes it defines pickle), so it may name a parameter, an upstream
    output or a constant from an `imports`/`functions` cell. Raises `StepFailed`.
    """
    if step.foreach is None:
        raise ValueError(f"step '{step.name}' has no foreach")
    expression = step.foreach.iterable

    def work(namespace: dict[str, Any], phase: list[str]) -> list[ArtifactRef]:
        _bind(step, namespace, phase, parameters, inputs, store, team)
        phase[0] = "foreach"
        value = eval(compile(expression, code_filename(step.name, "foreach"), "eval", dont_inherit=True), namespace)
        return [store_value(element, store=store, team=team) for element in expand_foreach(value)]

    refs, _, _ = _run_in_module(step, source, None, work)
    return refs


def _bind(
    step: Step,
    namespace: dict[str, Any],
    phase: list[str],
    parameters: dict[str, Any],
    inputs: dict[str, ArtifactRef | list[ArtifactRef]],
    store: ArtifactStore,
    team: str,
) -> None:
    """parameters -> prelude -> inputs, in the step's namespace."""
    phase[0] = "parameters"
    for name in step.parameters:
        if name not in parameters:
            raise KeyError(f"no value for parameter '{name}' (the run's parameters: {sorted(parameters)})")
        namespace[name] = parameters[name]
    phase[0] = "prelude"
    if step.prelude.strip():
        exec(_compile(step.prelude, code_filename(step.name, "prelude")), namespace)
    phase[0] = "inputs"
    for name, ref in inputs.items():
        namespace[name] = _load_input(name, ref, store, team)


def _run_in_module(
    step: Step,
    source: StepSource | None,
    on_output: Callable[[str, str], None] | None,
    work: Callable[[dict[str, Any], list[str]], Any],
) -> tuple[Any, str, str]:
    """Call `work(namespace, phase)` with a fresh `__main__` installed and prints captured."""
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    stdout, stderr = _Capture("stdout", on_output), _Capture("stderr", on_output)
    previous_main = sys.modules.get("__main__")
    phase = ["parameters"]
    try:
        sys.modules["__main__"] = module
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                result = work(namespace, phase)
            except (Exception, SystemExit) as exc:
                failed = _failure(step, exc, phase[0], source)
                failed.stdout, failed.stderr = stdout.getvalue(), stderr.getvalue()
                raise failed from exc
    finally:
        if previous_main is not None:
            sys.modules["__main__"] = previous_main
        else:
            sys.modules.pop("__main__", None)
    return result, stdout.getvalue(), stderr.getvalue()


def load_artifact(ref: ArtifactRef, *, store: ArtifactStore, team: str) -> Any:
    return deserialize(ref.serializer, store.get_blob(team, ref.sha256))


def store_value(value: Any, *, store: ArtifactStore, team: str) -> ArtifactRef:
    serializer, data = serialize(value)
    return ArtifactRef(store.put_blob(team, data), serializer, len(data), type_name(value))


def _load_input(name: str, ref: ArtifactRef | list[ArtifactRef], store: ArtifactStore, team: str) -> Any:
    if isinstance(ref, list):
        return [_load_input(name, r, store, team) for r in ref]
    try:
        return load_artifact(ref, store=store, team=team)
    except AttributeError as exc:
        # pickle names classes by module; one defined in the notebook must be defined again here.
        raise SerializationError(
            f"input '{name}' ({ref.type}) cannot be loaded: {exc}. Its class was defined in the notebook; "
            f"move the class definition into a 'functions' cell so every step that uses it defines it"
        ) from exc


def _store_outputs(step: Step, namespace: dict[str, Any], store: ArtifactStore, team: str) -> dict[str, ArtifactRef]:
    missing = [name for name in step.outputs if name not in namespace]
    if missing:
        names = ", ".join(f"'{n}'" for n in missing)
        raise NameError(
            f"the step did not define {names}, which later steps read; make sure every path through the step "
            f"assigns {'it' if len(missing) == 1 else 'them'}"
        )
    outputs = {}
    for name in step.outputs:
        try:
            outputs[name] = store_value(namespace[name], store=store, team=team)
        except SerializationError as exc:
            raise SerializationError(f"output '{name}': {exc}") from exc
    return outputs


__all__ = [
    "ArtifactRef",
    "Frame",
    "InputRef",
    "OutputRef",
    "StepFailed",
    "StepResult",
    "evaluate_foreach",
    "execute_step",
    "expand_foreach",
    "load_artifact",
    "store_value",
]
