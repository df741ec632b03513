"""Run a pipeline spec on this machine, with no platform: `run_pipeline(spec, {...})`.

The same artifact-store code (a `LocalArtifactStore` on a folder, team "local"), the same
serializers and the same step executor (`cellar.pipelines.execute`) as the pool workers;
steps run in a local process pool. The folder (default `$CELLAR_LOCAL_DIR` or
`~/.cellar/local`) holds:

    teams/local/data/<sha[:2]>/<sha>     the artifacts, content-addressed
    cache/<key[:2]>/<key>.json           the step cache: outputs by pointer
    runs/<run-id>/run.json               the run record: parameters, tasks, states, outputs, error
    runs/<run-id>/spec.json              the spec that ran (its hash is the version id)
    runs/<run-id>/logs/<task>.stdout|stderr

On a failure no new task starts (unless `keep_going`), running ones finish, the tasks
below the failure become `upstream_failed` and those never started `cancelled`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import StepFailed, evaluate_foreach, execute_step, load_artifact
from cellar.pipelines.progress import ProgressBar, ProgressState
from cellar.pipelines.runner.cache import StepCache, cache_key, cacheable, environment_hash
from cellar.pipelines.runner.parameters import resolve_parameters
from cellar.pipelines.runner.plan import (
    CACHED,
    CANCELLED,
    DONE_OK,
    FAILED,
    FINAL,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Plan,
    Task,
)
from cellar.pipelines.spec import PipelineSpec

TEAM = "local"


def default_directory() -> Path:
    return Path(os.environ.get("CELLAR_LOCAL_DIR") or Path.home() / ".cellar" / "local").expanduser()


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class LocalRun:
    """The outcome of a local run; `run.json` in `directory` holds the same record."""

    id: str
    directory: Path  # runs/<id>
    root: Path  # the local folder (store, cache, runs)
    spec_hash: str
    parameters: dict[str, Any]
    state: str
    tasks: list[Task] = field(default_factory=list)
    error: StepFailed | None = None
    duration: float = 0.0
    team: str = TEAM

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED

    def task(self, step: str, index: int | None = None) -> Task:
        for task in self.tasks:
            if task.step == step and task.index == index and task.kind == "step":
                return task
        raise KeyError(f"no task {step}" + (f"[{index}]" if index is not None else ""))

    def branch_tasks(self, step: str) -> list[Task]:
        return sorted((t for t in self.tasks if t.step == step and t.kind == "step"), key=lambda t: t.index or 0)

    def load(self, step: str, name: str, index: int | None = None) -> Any:
        """The value a task stored under `name` (read back through its serializer)."""
        ref = self.task(step, index).outputs[name]
        return load_artifact(ref, store=LocalArtifactStore(self.root), team=self.team)

    def log(self, step: str, index: int | None = None, stream: str = "stdout", *, kind: str = "step") -> str:
        """What the task printed (`stream`: "stdout" or "stderr")."""
        path = self.directory / "logs" / f"{_task_file(step, index, kind)}.{stream}"
        return path.read_text() if path.exists() else ""


def _task_file(step: str, index: int | None, kind: str) -> str:
    if kind == "foreach":
        return f"{step}.foreach"
    return step if index is None else f"{step}.{index}"


def _execute(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs in a pool process: one task, its prints streamed to its log files."""
    started = time.monotonic()
    store = LocalArtifactStore(Path(payload["root"]))
    step = payload["step"]
    logs = Path(payload["logs"])
    with open(f"{logs}.stdout", "a", buffering=1) as out, open(f"{logs}.stderr", "a", buffering=1) as err:
        if payload["attempt"] > 1:
            for handle in (out, err):
                handle.write(f"--- attempt {payload['attempt']} ---\n")

        def forward(stream: str, text: str) -> None:
            (out if stream == "stdout" else err).write(text)

        common = dict(parameters=payload["parameters"], inputs=payload["inputs"], store=store, team=payload["team"])
        try:
            if payload["kind"] == "foreach":
                refs = evaluate_foreach(step, source=payload["source"], **common)
                return {"ok": True, "items": refs, "duration": time.monotonic() - started}
            result = execute_step(
                step,
                item=payload["item"],
                source=payload["source"],
                on_output=forward,
                timeout=step.timeout,
                **common,
            )
            return {"ok": True, "outputs": result.outputs, "duration": time.monotonic() - started}
        except StepFailed as exc:
            return {"ok": False, "error": exc.to_dict(), "duration": time.monotonic() - started}
        except Exception as exc:  # noqa: BLE001 - a runner-side failure must come back as data
            err.write(traceback.format_exc())
            return {"ok": False, "error": _runner_error(step.name, exc), "duration": time.monotonic() - started}


def _runner_error(step: str, exc: BaseException, message: str | None = None) -> dict[str, Any]:
    return {
        "step": step,
        "exc_type": type(exc).__name__,
        "message": message or str(exc),
        "phase": "runner",
        "frames": [],
        "cell": None,
        "line": None,
        "traceback": "",
    }


class _LocalRunner:
    def __init__(self, spec: PipelineSpec, values: dict[str, Any], root: Path, workers: int, use_cache: bool):
        self.spec = spec
        self.values = values
        self.root = root
        self.workers = workers
        self.use_cache = use_cache
        self.store = LocalArtifactStore(root)
        self.cache = StepCache(root / "cache", self.store, TEAM)
        self.environment = environment_hash(spec.environment)
        self.plan = Plan(spec)
        self.id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.directory = root / "runs" / self.id
        (self.directory / "logs").mkdir(parents=True)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.error: dict[str, Any] | None = None
        self.ended: list[tuple[str, str, float | None]] = []
        self.in_flight: dict[Future, Task] = {}
        self._last_record = 0.0
        self.interrupted = False
        (self.directory / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1, sort_keys=True))

    # --- scheduling ---------------------------------------------------------------------

    def start_ready(self, pool: ProcessPoolExecutor) -> None:
        """Submit ready tasks up to the worker count; cache hits complete on the spot."""
        progressed = True
        while progressed:
            progressed = False
            for task in self.plan.ready():
                if len(self.in_flight) >= self.workers:
                    return
                try:
                    payload = self.payload(task)
                except LookupError as exc:
                    self.finish(task, FAILED, error=_runner_error(task.step, exc))
                    return
                if task.kind == "step" and self.try_cache(task, payload):
                    progressed = True
                    continue
                task.state = RUNNING
                task.attempts += 1
                self.in_flight[pool.submit(_execute, payload)] = task

    def payload(self, task: Task) -> dict[str, Any]:
        step = self.plan.step_of(task)
        return {
            "kind": task.kind,
            "step": step,
            "parameters": self.values,
            "inputs": self.plan.inputs_for(task),
            "item": self.plan.item_for(task),
            "root": str(self.root),
            "team": TEAM,
            "source": self.spec.source.get(step.name),
            "logs": str(self.directory / "logs" / _task_file(task.step, task.index, task.kind)),
            "attempt": task.attempts + 1,
        }

    def try_cache(self, task: Task, payload: dict[str, Any]) -> bool:
        step = self.plan.step_of(task)
        task.cache_key = cache_key(
            step,
            inputs=payload["inputs"],
            item=payload["item"],
            parameters=self.values,
            environment=self.environment,
            unread=self.plan.unread_iterables.get(step.name) if task.index is not None else None,
        )
        if not (self.use_cache and cacheable(step) and task.cache_key):
            return False
        outputs = self.cache.get(task.cache_key)
        if outputs is None or set(outputs) != set(step.outputs):
            return False
        task.outputs = outputs
        self.finish(task, CACHED)
        return True

    def collect(self, future: Future) -> None:
        task = self.in_flight.pop(future)
        try:
            result = future.result()
        except BrokenProcessPool as exc:
            message = "the worker process running this step died (killed, out of memory, or a crash in native code)"
            self.finish(task, FAILED, error=_runner_error(task.step, exc, message))
            return
        if not result["ok"]:
            if task.kind == "step" and task.attempts <= self.plan.step_of(task).retry:
                # `retry:n`: run it again (right away: locally there is no flaky neighbour to wait out).
                task.state, task.error = QUEUED, result["error"]
                self.ended.append((task.label, f"failed (attempt {task.attempts}), retrying", result["duration"]))
                return
            self.finish(task, FAILED, error=result["error"], duration=result["duration"])
            return
        if task.kind == "foreach":
            task.items = len(result["items"])
            self.plan.expand(task.step, result["items"])
        else:
            task.outputs = result["outputs"]
            step = self.plan.step_of(task)
            if cacheable(step) and task.cache_key:
                self.cache.put(task.cache_key, task.outputs, run=self.id, step=task.label)
        self.finish(task, SUCCEEDED, duration=result["duration"])

    def finish(self, task: Task, state: str, *, error: dict | None = None, duration: float | None = None) -> None:
        task.state, task.error, task.duration = state, error, duration
        if error is not None and self.error is None:
            self.error = error
        if task.kind == "step" or state == FAILED:
            self.ended.append((task.label, state, duration))
        if error is not None:
            for marked in self.plan.propagate_failures():
                if marked.kind == "step":
                    self.ended.append((marked.label, marked.state, None))

    # --- reporting ----------------------------------------------------------------------

    def progress_state(self, finished: bool = False) -> ProgressState:
        tasks = self.plan.step_tasks()
        state = ProgressState(
            done=sum(t.state in FINAL for t in tasks),
            total=len(tasks),
            running=[t.label for t in self.in_flight.values()],
            elapsed=time.monotonic() - self.started,
            failed=sum(t.state == FAILED for t in self.plan.tasks.values()),
            ended=self.ended,
            finished=finished,
        )
        self.ended = []
        return state

    def interrupt(self) -> None:
        self.interrupted = True
        for task in self.in_flight.values():
            task.state = CANCELLED
        self.in_flight.clear()
        self.plan.cancel_queued()
        self.write_record(force=True)

    def state(self) -> str:
        if self.interrupted:
            return CANCELLED
        tasks = self.plan.tasks.values()
        if any(t.state not in FINAL for t in tasks):
            return RUNNING
        return SUCCEEDED if all(t.state in DONE_OK for t in tasks) else FAILED

    def write_record(self, force: bool = False) -> None:
        # Throttled: a wide fan-out would otherwise rewrite a large file per task.
        now = time.monotonic()
        if not force and now - self._last_record < 1.0:
            return
        self._last_record = now
        record = {
            "id": self.id,
            "notebook": self.spec.notebook,
            "spec_hash": self.spec.content_hash(),
            "state": self.state(),
            "parameters": self.values,
            "team": TEAM,
            "started_at": self.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat() if self.state() != RUNNING else None,
            "duration": time.monotonic() - self.started,
            "workers": self.workers,
            "cache": self.use_cache,
            "tasks": [t.to_dict() for t in self.plan.tasks.values()],
            "error": self.error,
        }
        path = self.directory / "run.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, default=repr))
        os.replace(tmp, path)


def _schedule(runner: _LocalRunner, pool: ProcessPoolExecutor, report, keep_going: bool) -> None:
    """Start ready work, collect results, until nothing runs; after a failure start nothing new."""
    stopping = False
    while True:
        if not stopping:
            runner.start_ready(pool)
        if report:
            report(runner.progress_state())
        if not runner.in_flight:
            return
        done, _ = wait(list(runner.in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
        for future in done:
            runner.collect(future)
        if runner.error is not None and not keep_going:
            stopping = True
        if any(isinstance(f.exception(), BrokenProcessPool) for f in done if not f.cancelled()):
            stopping = True  # the pool is unusable; finish with what came back
        runner.write_record()


def _stop(pool: ProcessPoolExecutor) -> None:
    # Read the workers first: shutdown() forgets them (CPython sets `_processes` to None), and a
    # worker left alive keeps this command (and the terminal's pipes) open.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:  # a step that ignores the interrupt would otherwise run on
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork: workers start instantly and inherit what the runner imported; elsewhere
    # (macOS, Windows) the platform's safe default.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def run_pipeline(
    spec: PipelineSpec,
    parameters: dict[str, Any] | None = None,
    *,
    directory: str | Path | None = None,
    workers: int | None = None,
    progress: bool | Callable[[ProgressState], None] = True,
    cache: bool = True,
    keep_going: bool = False,
) -> LocalRun:
    """Run `spec` locally and return its record; a failed step does not raise (see `LocalRun.ok`).

    `parameters` override the defaults (strings are parsed by each parameter's type; an
    unknown name raises `ParameterError`). `progress`: True draws a bar on stderr, a
    callable receives each `ProgressState`, False is silent. `cache=False` runs every step
    (results are still recorded for later runs). `keep_going` keeps starting work that does
    not depend on a failed task.
    """
    values = resolve_parameters(spec, parameters)
    root = Path(directory).expanduser() if directory is not None else default_directory()
    root.mkdir(parents=True, exist_ok=True)
    workers = workers or default_workers()
    report = ProgressBar() if progress is True else (progress or None)
    runner = _LocalRunner(spec, values, root.resolve(), workers, cache)
    runner.write_record(force=True)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())
    try:
        _schedule(runner, pool, report, keep_going)
    except BaseException:  # Ctrl-C (or anything else): record the run as cancelled, stop the workers
        runner.interrupt()
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    runner.plan.propagate_failures()
    runner.plan.cancel_queued()
    runner.write_record(force=True)
    if report:
        report(runner.progress_state(finished=True))
    error = StepFailed.from_dict(runner.error) if runner.error else None
    return LocalRun(
        id=runner.id,
        directory=runner.directory,
        root=runner.root,
        spec_hash=spec.content_hash(),
        parameters=values,
        state=runner.state(),
        tasks=list(runner.plan.tasks.values()),
        error=error,
        duration=time.monotonic() - runner.started,
    )
