"""The executor process: runs one team's user code, one task at a time, for as long as it is kept warm.

Started by `executors.py` as ``python -m cellar_worker.executor_main <fd>`` with a scrubbed
environment (no broker, no database credentials). It imports the SDK only: never Celery,
never the agent. It talks to its agent over the socket `fd`, one JSON message per task:

    agent -> executor  {"op": "run", "kind": "step" | "expand", "team", "static", "inputs",
                        "item", "timeout", "env", "stdout", "stderr"}
                       + "step", "source", "parameters" with a batch's first task here
                       ("static" names them for the batch's later tasks)
    executor -> agent  {"ok": true, "outputs": {name: ref}} | {"ok": true, "items": [ref]}
                       | {"ok": false, "error": StepFailed.to_dict()-like}

JSON both ways: the agent holds the broker connection and must never unpickle what user code
produced. While a task runs, file descriptors 1 and 2 point at the task's log files, so prints
from Python, C extensions and subprocesses all land there, in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import fields
from multiprocessing.connection import Connection
from typing import Any

from cellar.artifacts import ArtifactStore, store_from_url
from cellar.pipelines.execute import ArtifactRef, StepFailed, evaluate_foreach, execute_step
from cellar.pipelines.spec import Foreach, Resources, Step, StepSource

EXPAND = "expand"


def step_from_dict(raw: dict[str, Any]) -> Step:
    data = {f.name: raw[f.name] for f in fields(Step) if f.name in raw}
    data["foreach"] = Foreach(**raw["foreach"]) if raw.get("foreach") else None
    data["resources"] = Resources(**(raw.get("resources") or {}))
    return Step(**data)


def source_from_dict(raw: dict[str, Any] | None) -> StepSource | None:
    return StepSource(**raw) if raw else None


def _ref(value: Any) -> ArtifactRef | list[ArtifactRef]:
    if isinstance(value, list):
        return [ArtifactRef.from_dict(v) for v in value]
    return ArtifactRef.from_dict(value)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


_LIBC: list[Any] = []


def _flush_c_stdio() -> None:
    # C extensions buffer through stdio; flush before the descriptors move. The handle is
    # loaded once: dlopen per task was 4% of an executor's time.
    with contextlib.suppress(Exception):
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None))
        _LIBC[0].fflush(None)


# The batch's log files, open for as long as the agent names them: every task of a batch appends
# to the same two files and reports their sizes after it, so the agent reads each task's part by
# offset (creating, reading and deleting two files per task was a tenth of a task's cost).
_LOG_FDS: dict[str, int] = {}


def _log_fd(path: str) -> int:
    fd = _LOG_FDS.get(path)
    if fd is None:
        if len(_LOG_FDS) >= 2:  # a new batch's files: the previous batch's are done
            for old in _LOG_FDS.values():
                os.close(old)
            _LOG_FDS.clear()
        fd = _LOG_FDS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return fd


@contextlib.contextmanager
def _logs_to(stdout_path: str, stderr_path: str, sizes: dict[str, int]) -> Iterator[Any]:
    """Point descriptors 1 and 2 at the batch's log files; yield a writer for Python-level prints.
    On the way out, `sizes` gets both files' sizes (where this task's output ends)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out, err = _log_fd(stdout_path), _log_fd(stderr_path)
    os.dup2(out, 1)
    os.dup2(err, 2)

    def write(stream: str, text: str) -> None:
        _write_all(1 if stream == "stdout" else 2, text.encode("utf-8", "replace"))

    try:
        yield write
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        _flush_c_stdio()
        sizes["stdout"], sizes["stderr"] = os.fstat(out).st_size, os.fstat(err).st_size
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _task_environment(env: dict[str, str]) -> None:
    """CELLAR_URL, CELLAR_TOKEN, CELLAR_TEAM, CELLAR_RUN_ID: what `cellar.log_metric` needs to log
    to the task's run. The process is warm, so the previous task's values are replaced."""
    for name, value in env.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    session = sys.modules.get("cellar.tracking.session")
    if session is not None:
        session.logout()  # the next log call logs in with this task's token


def _end_tracking() -> None:
    """Deliver what the step logged before its result is reported, and forget the attached run."""
    runs = sys.modules.get("cellar.tracking.run")
    active = getattr(runs, "_active", None) if runs is not None else None
    if active is not None:
        with contextlib.suppress(Exception):
            active._end("FINISHED", raise_errors=False)


def _executor_error(step: str, exc: BaseException) -> dict[str, Any]:
    return {
        "step": step,
        "exc_type": type(exc).__name__,
        "message": str(exc),
        "phase": "executor",
        "frames": [],
        "cell": None,
        "line": None,
        "traceback": "",
    }


class _Static:
    """What every task of a batch shares (step, source map, parameter values): the agent sends it
    with the first task of each batch it gives this process and names it by key afterwards."""

    key: str | None = None
    step: Step | None = None
    source: StepSource | None = None
    parameters: dict[str, Any] = {}

    @classmethod
    def take(cls, request: dict[str, Any]) -> tuple[Step, StepSource | None, dict[str, Any]]:
        if "step" in request:
            cls.key, cls.step = request.get("static"), step_from_dict(request["step"])
            cls.source, cls.parameters = source_from_dict(request.get("source")), request.get("parameters") or {}
        elif cls.step is None or cls.key != request.get("static"):
            raise RuntimeError("the agent named a step this executor was not given (protocol error)")
        return cls.step, cls.source, cls.parameters


def run_task(request: dict[str, Any], store: ArtifactStore) -> dict[str, Any]:
    try:
        step, source, parameters = _Static.take(request)
    except RuntimeError as exc:
        return {"ok": False, "error": _executor_error(str((request.get("step") or {}).get("name", "")), exc)}
    _task_environment(request.get("env") or {})
    sizes: dict[str, int] = {}
    with _logs_to(request["stdout"], request["stderr"], sizes) as write:
        answer = _execute(request, step, source, parameters, store, write)
    answer["log_sizes"] = sizes
    return answer


def _execute(request: dict[str, Any], step: Step, source, parameters, store: ArtifactStore, write) -> dict[str, Any]:
    team = request["team"]
    try:
        common = dict(
            parameters=parameters,
            inputs={name: _ref(ref) for name, ref in (request.get("inputs") or {}).items()},
            store=store,
            team=team,
            source=source,
        )
        if request.get("kind") == EXPAND:
            refs = evaluate_foreach(step, **common)
            return {"ok": True, "items": [ref.to_dict() for ref in refs]}
        item = request.get("item")
        result = execute_step(
            step,
            # Only the foreach step binds the element; later steps of the branch read outputs.
            item=ArtifactRef.from_dict(item) if item and step.foreach is not None else None,
            on_output=write,
            timeout=request.get("timeout"),
            **common,
        )
        return {"ok": True, "outputs": {name: ref.to_dict() for name, ref in result.outputs.items()}}
    except StepFailed as exc:
        return {"ok": False, "error": exc.to_dict()}
    except Exception as exc:  # noqa: BLE001 - anything else is reported as data, with its traceback logged
        write("stderr", traceback.format_exc())
        return {"ok": False, "error": _executor_error(step.name, exc)}
    finally:
        _end_tracking()


def _watch_parent(parent: int) -> None:
    """Exit when the agent is gone (even SIGKILLed mid-step): nobody would report the result, and
    the engine requeues the task once its lease expires."""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="cellar-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    conn = Connection(int(argv[1]))
    _watch_parent(os.getppid())
    store = store_from_url(os.environ["ARTIFACT_STORE_URL"])
    conn.send_bytes(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        try:
            request = json.loads(conn.recv_bytes())
        except EOFError:
            return 0  # the agent closed the connection: stop quietly
        if request.get("op") != "run":
            return 0
        conn.send_bytes(json.dumps(run_task(request, store)).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
