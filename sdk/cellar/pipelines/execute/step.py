"""Running one step in a fresh `__main__` (see the package docstring for the order)."""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import io
import linecache
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from cellar.artifacts.base import ArtifactStore, ArtifactStoreError
from cellar.pipelines.execute.failure import code_filename, failure_from
from cellar.pipelines.execute.refs import ArtifactRef, StepResult, load_artifact, store_value
from cellar.pipelines.serializers import SerializationError, type_name
from cellar.pipelines.spec import Step, StepSource


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


class StepTimeout(TimeoutError):
    """The step ran past its `timeout:` tag."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise `StepTimeout` inside the step once `seconds` have passed (SIGALRM, main thread only).

    Soft: it interrupts Python code, so the traceback shows the line that was running; a
    long call inside a C extension is interrupted when it returns. Process-level limits
    (killing a stuck process) are the executor's business.
    """
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise StepTimeout(
            f"the step ran longer than its timeout of {seconds:g}s (tag timeout:); speed it up or raise the limit"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _compile(text: str, filename: str) -> types.CodeType:
    # linecache lets tracebacks (and debuggers) show the user's lines for the pseudo file.
    cached = linecache.cache.get(filename)
    if cached is None or cached[2] is None or "".join(cached[2]) != text:
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    return _compiled(text, filename)


@functools.lru_cache(maxsize=256)
def _compiled(text: str, filename: str) -> types.CodeType:
    """A warm executor runs the same step's code for every element of a fan-out: compile it once."""
    return compile(text, filename, "exec", dont_inherit=True)


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
    timeout: float | None = None,
) -> StepResult:
    """Run `step` and store its outputs; raise `StepFailed` if anything goes wrong.

    `parameters` holds the run's resolved values (defaults already overridden); only those
    the step reads are injected. `inputs` maps each input name to its artifact, or to a list
    of artifacts (a join). `item` is the foreach element for a `foreach:` step.
    `on_output(stream, text)` sees prints as they happen; they are also returned.
    `timeout` (seconds, usually `step.timeout`) fails the step with `StepTimeout` at the
    line that was running.
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

    outputs, out, err = _run_in_module(step, source, on_output, work, timeout)
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
    timeout: float | None = None,
) -> tuple[Any, str, str]:
    """Call `work(namespace, phase)` with a fresh `__main__` installed and prints captured."""
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    stdout, stderr = _Capture("stdout", on_output), _Capture("stderr", on_output)
    previous_main = sys.modules.get("__main__")
    # A warm worker runs many steps: one that changes directory must not move the next.
    previous_cwd = os.getcwd()
    phase = ["parameters"]
    try:
        sys.modules["__main__"] = module
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                with _deadline(timeout):
                    result = work(namespace, phase)
            except (Exception, SystemExit) as exc:
                failed = failure_from(step, exc, phase[0], source)
                failed.stdout, failed.stderr = stdout.getvalue(), stderr.getvalue()
                raise failed from exc
    finally:
        if os.getcwd() != previous_cwd:
            os.chdir(previous_cwd)
        if previous_main is not None:
            sys.modules["__main__"] = previous_main
        else:
            sys.modules.pop("__main__", None)
    return result, stdout.getvalue(), stderr.getvalue()


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
        except ArtifactStoreError as exc:
            raise ArtifactStoreError(f"output '{name}': {exc}") from exc
    return outputs
