"""Runs: `with cellar.start_run(...) as run:` and the module-level functions that log to the active run.

A run is online (created on the server, logged through a background batcher), offline
(written to the offline folder for `cellar sync`), or attached: inside a pipeline step
CELLAR_RUN_ID names the step's run, which the engine created and will end.
"""

from __future__ import annotations

import atexit
import logging
import os
import posixpath
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellar.tracking import session as sessions
from cellar.tracking import source as sources
from cellar.tracking.batcher import Batcher, FolderSink, HttpSink
from cellar.tracking.errors import ConfigurationError, TrackingError, TransientError
from cellar.tracking.keys import key_problem
from cellar.tracking.offline import RunFolder

logger = logging.getLogger("cellar.tracking")

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_valid_keys: set[str] = set()  # keys already checked: the hot path pays one set lookup
STATUSES = ("FINISHED", "FAILED", "KILLED")


def _check_key(key: Any, what: str) -> str:
    if isinstance(key, str) and key in _valid_keys:
        return key
    problem = key_problem(key, what)
    if problem is not None:
        raise ValueError(problem)
    if len(_valid_keys) < 100_000:
        _valid_keys.add(key)
    return key


def _check_value(value: Any, what: str, limit: int) -> str:
    if value is None:
        raise ValueError(f"A {what} value cannot be None.")
    text = str(value)
    if len(text) > limit:
        raise ValueError(f"The {what} value is {len(text)} characters; the limit is {limit}.")
    return text


def _artifact_relpath(artifact_path: str | None, name: str) -> str:
    path = posixpath.normpath(posixpath.join((artifact_path or "").replace("\\", "/"), name))
    if path.startswith(("/", "..")) or path == ".":
        raise ValueError(f"Invalid artifact path '{path}': it must stay inside the run's artifacts.")
    return path


class _Ended:
    """Stands in for the queue of an ended run: logging to it says so."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def append(self, item: Any) -> None:
        raise RuntimeError(f"Run {self.run_id} has ended; start a new one with cellar.start_run().")


class Run:
    """One tracking run. Use it as a context manager; logging calls only enqueue."""

    def __init__(
        self,
        *,
        run_id: str,
        experiment_id: str | None,
        name: str | None,
        batcher: Batcher,
        session: sessions.Session | None = None,
        folder: RunFolder | None = None,
        artifact_root: str | None = None,
        owned: bool = True,
    ):
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.name = name
        self.offline = folder is not None
        self.owned = owned  # False for a pipeline step's run: the engine ends it
        self.status = "RUNNING"
        self._batcher = batcher
        self._queue = batcher.queue
        self._wake = batcher._wake
        self._trigger = batcher.trigger
        self._session = session
        self._folder = folder
        self._artifact_root = artifact_root
        self._params: dict[str, str] = {}
        self._ended = False

    @property
    def id(self) -> str:
        return self.run_id

    def __repr__(self) -> str:
        where = "offline" if self.offline else ("attached" if not self.owned else "online")
        return f"<cellar.Run {self.run_id} {self.name or ''} ({where}, {self.status})>"

    # --- logging: checks, then one append ---------------------------------------------------

    def _raise_refused(self) -> None:
        error = self._batcher.take_error()
        if error is not None:
            raise error

    def _put(self, item: tuple) -> None:
        queue = self._queue
        queue.append(item)  # raises once the run has ended
        if len(queue) >= self._trigger and not self._wake.is_set():
            self._wake.set()

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Record one point of `key`'s history (timestamp in epoch ms, default now)."""
        if self._batcher.error is not None:
            self._raise_refused()
        if key not in _valid_keys:
            _check_key(key, "metric")
        queue = self._queue
        queue.append(
            (
                "m",
                key,
                float(value),
                0 if step is None else int(step),
                int(time.time() * 1000) if timestamp is None else int(timestamp),
            )
        )
        if len(queue) >= self._trigger and not self._wake.is_set():
            self._wake.set()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        timestamp = int(time.time() * 1000) if timestamp is None else int(timestamp)
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter; params are write-once (the same value again is fine)."""
        if self._batcher.error is not None:
            self._raise_refused()
        _check_key(key, "param")
        text = _check_value(value, "param", MAX_PARAM_VALUE)
        logged = self._params.get(key)
        if logged is not None and logged != text:
            raise TrackingError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{logged}' for run ID='{self.run_id}'. Attempted logging new value '{text}'.",
            )
        self._params[key] = text
        self._put(("p", key, text))

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag; setting it again replaces the value."""
        if self._batcher.error is not None:
            self._raise_refused()
        _check_key(key, "tag")
        text = _check_value(value, "tag", MAX_TAG_VALUE)
        self._put(("t", key, text))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.set_tag(key, value)

    # --- artifacts ----------------------------------------------------------------------------

    def log_artifact(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload one file into the run's artifacts (under `artifact_path`, keeping its name).

        Online, the file is read and uploaded now (retrying while the server is away, up to
        CELLAR_FLUSH_TIMEOUT; after that it is copied to the offline folder for `cellar sync`).
        Offline, it is copied now, so later changes to the file do not affect the run.
        """
        path = Path(local_path)
        if not path.is_file():
            raise FileNotFoundError(f"No file at {path}.")
        self._store_artifact(path, _artifact_relpath(artifact_path, path.name))

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload every file under `local_dir`, keeping the tree, under `artifact_path`."""
        root = Path(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"No directory at {root}.")
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = file.relative_to(root).as_posix()
            self._store_artifact(file, _artifact_relpath(artifact_path, relative))

    def _store_artifact(self, file: Path, relpath: str) -> None:
        if self._ended:
            raise RuntimeError(f"Run {self.run_id} has ended.")
        if self._folder is not None:
            self._folder.copy_artifact(file, relpath)
            self._put(("a", relpath))
            return
        self._upload(relpath, lambda: open(file, "rb"), fallback=lambda folder: folder.copy_artifact(file, relpath))

    def _store_bytes(self, data: bytes, relpath: str) -> None:
        if self._folder is not None:
            self._folder.write_artifact_bytes(data, relpath)
            self._put(("a", relpath))
            return
        self._upload(relpath, data, fallback=lambda folder: folder.write_artifact_bytes(data, relpath))

    def _upload(self, relpath: str, data: Any, fallback: Any) -> None:
        transport = self._session.transport
        deadline = time.monotonic() + sessions.flush_timeout()
        try:
            sessions.retrying(
                lambda: transport.put_artifact(f"{self._artifact_root}/{relpath}", data), deadline=deadline
            )
        except TransientError as exc:
            folder = RunFolder.create(sessions.offline_dir(), self._spill_meta(), name=f"{self.run_id}-{_short_id()}")
            fallback(folder)
            folder.append([{"kind": "artifact", "path": relpath}])
            folder.unlock()
            logger.warning(
                "cellar: could not upload artifact %s (%s); saved in %s, upload it with `cellar sync`",
                relpath,
                exc,
                folder.path,
            )

    def _spill_meta(self) -> dict:
        s = self._session
        return {"server_run_id": self.run_id, "experiment_id": self.experiment_id, "url": s.url, "team": s.team}

    # --- the end ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the server (or the offline folder) has everything logged so far.

        Raises the server's refusal of anything logged, or TimeoutError when `timeout`
        seconds pass first (the data stays queued and keeps being retried).
        """
        delivered = self._batcher.flush(timeout)
        self._raise_refused()
        if not delivered:
            raise TimeoutError(f"{self._batcher.pending()} logged items are still waiting for the server.")

    def end(self, status: str = "FINISHED") -> None:
        """Flush, then mark the run FINISHED / FAILED / KILLED (attached runs are only flushed)."""
        self._end(status, raise_errors=True)

    def _end(self, status: str, *, raise_errors: bool) -> None:
        if status not in STATUSES:
            raise ValueError(f"A run ends {', '.join(STATUSES)}, not {status!r}.")
        if self._ended:
            return
        self._ended = True
        self._queue = _Ended(self.run_id)
        _forget(self)
        spilled = self._batcher.close(timeout=None if self.offline else sessions.flush_timeout())
        error = self._batcher.take_error()
        if error is not None and status == "FINISHED":
            status = "FAILED"
        end_time = int(time.time() * 1000)
        if self._folder is not None:
            if self.owned:
                self._folder.append([{"kind": "end", "status": status, "end_time": end_time}])
            self._folder.unlock()
        elif self.owned:
            self._update_status(status, end_time, spilled)
        elif spilled is not None:
            spilled.unlock()
        if spilled is not None:
            logger.warning(
                "cellar: the server did not take everything logged to run %s; the rest is saved in %s. "
                "Send it with `cellar sync`.",
                self.run_id,
                spilled.path,
            )
        self.status = status if self.owned else self.status
        if error is not None:
            if raise_errors:
                raise error
            logger.error("cellar: run %s: %s", self.run_id, error)

    def _update_status(self, status: str, end_time: int, spilled: RunFolder | None) -> None:
        body = {"run_id": self.run_id, "status": status, "end_time": end_time}
        if spilled is None:
            try:
                sessions.retrying(
                    lambda: self._session.transport.call("POST", "runs/update", body),
                    deadline=time.monotonic() + min(30.0, sessions.flush_timeout()),
                )
                return
            except TransientError:
                spilled = RunFolder.create(
                    sessions.offline_dir(), self._spill_meta(), name=f"{self.run_id}-{_short_id()}"
                )
        # The batches still to send come first: the status lands after them at `cellar sync`.
        spilled.append([{"kind": "end", "status": status, "end_time": end_time}])
        spilled.unlock()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if not self.owned:
            # The step's run stays active for the rest of the step; the engine ends it.
            if exc_type is None:
                try:
                    self.flush(sessions.flush_timeout())
                except TimeoutError as exc:
                    logger.warning("cellar: %s They keep being retried in the background.", exc)
            return False
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self._end(status, raise_errors=exc_type is None)
        return False


def _short_id() -> str:
    return uuid.uuid4().hex[:8]


# --- the active run ------------------------------------------------------------------------

_lock = threading.RLock()
_active: Run | None = None
_uncaught: type[BaseException] | None = None
_hooks_installed = False


def _forget(run: Run) -> None:
    global _active
    with _lock:
        if _active is run:
            _active = None


def active_run() -> Run | None:
    """The run module-level logging goes to: the one started last and not ended, or the step's run."""
    run = _active
    if run is None and os.environ.get("CELLAR_RUN_ID"):
        return start_run()
    return run


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    offline: bool | None = None,
    experiment_id: str | None = None,
) -> Run:
    """Start a run in `experiment` (created if missing; default: $CELLAR_EXPERIMENT, else the
    team's default experiment) and make it the active run.

    Inside a pipeline step (CELLAR_RUN_ID set), this attaches to the step's run instead.
    `offline=True` (or CELLAR_OFFLINE=1) writes the run to the offline folder for `cellar sync`.
    """
    global _active
    attach_id = os.environ.get("CELLAR_RUN_ID") or None
    with _lock:
        current = _active
        if current is not None:
            if attach_id and current.run_id == attach_id:
                return current
            raise RuntimeError(
                f"Run {current.run_id} is still active: end it with cellar.end_run() (or run.end()) first, "
                "or log inside its with-block."
            )
        if offline is None:
            offline = sessions.env_flag("CELLAR_OFFLINE")
        experiment = experiment or os.environ.get("CELLAR_EXPERIMENT") or None
        clean_tags = {_check_key(k, "tag"): _check_value(v, "tag", MAX_TAG_VALUE) for k, v in (tags or {}).items()}
        if offline:
            run = _start_offline(experiment, experiment_id, name, clean_tags, attach_id)
        elif attach_id:
            run = _attach(attach_id)
        else:
            run = _start_online(experiment, experiment_id, name, clean_tags)
        _active = run
        _install_exit_hooks()
    return run


def _start_online(experiment: str | None, experiment_id: str | None, name: str | None, tags: dict) -> Run:
    session = sessions.current_session()
    deadline = time.monotonic() + 30
    exp_id = experiment_id or session.experiment_id(experiment, deadline=deadline)
    source = sources.detect()
    info = sessions.create_run_once(
        session.transport,
        experiment_id=exp_id,
        run_name=name,
        start_time=int(time.time() * 1000),
        tags={**source.tags, **tags},
        client_run_id=uuid.uuid4().hex,
        deadline=deadline,
    )["info"]
    run = _online_run(session, info, owned=True)
    for relpath, data in source.files:
        try:
            run._store_bytes(data, relpath)
        except Exception as exc:  # snapshots are a courtesy: never fail the user's run for them
            logger.warning("cellar: could not save %s: %s", relpath, exc)
    return run


def _attach(run_id: str) -> Run:
    session = sessions.current_session()
    try:
        found = sessions.retrying(
            lambda: session.transport.call("GET", "runs/get", {"run_id": run_id}),
            deadline=time.monotonic() + 30,
        )
    except TrackingError as exc:
        raise ConfigurationError(f"CELLAR_RUN_ID is {run_id}, but the server says: {exc.message}") from exc
    return _online_run(session, found["run"]["info"], owned=False)


def _online_run(session: sessions.Session, info: dict, *, owned: bool) -> Run:
    run_id = info["run_id"]
    meta = {"server_run_id": run_id, "experiment_id": info["experiment_id"], "url": session.url, "team": session.team}
    batcher = Batcher(
        HttpSink(session.transport, run_id),
        spill=lambda: RunFolder.create(sessions.offline_dir(), meta, name=f"{run_id}-{_short_id()}"),
        max_queue=sessions.max_queue(),
        name=f"cellar-run-{run_id[:8]}",
    )
    return Run(
        run_id=run_id,
        experiment_id=info["experiment_id"],
        name=info.get("run_name"),
        batcher=batcher,
        session=session,
        artifact_root=info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/"),
        owned=owned,
    )


def _start_offline(
    experiment: str | None, experiment_id: str | None, name: str | None, tags: dict, attach_id: str | None
) -> Run:
    run_id = uuid.uuid4().hex
    source = sources.detect() if attach_id is None else sources.Source()
    meta = {
        "client_run_id": run_id,
        "experiment": experiment,
        "experiment_id": experiment_id,
        "run_name": name,
        "start_time": int(time.time() * 1000),
        "tags": {**source.tags, **tags},
        "server_run_id": attach_id,  # set: append to the step's existing run at sync
    }
    folder = RunFolder.create(sessions.offline_dir(), meta, name=run_id)
    batcher = Batcher(FolderSink(folder), name=f"cellar-offline-{run_id[:8]}")
    run = Run(
        run_id=run_id,
        experiment_id=experiment_id,
        name=name,
        batcher=batcher,
        folder=folder,
        owned=attach_id is None,
    )
    for relpath, data in source.files:
        run._store_bytes(data, relpath)
    return run


def end_run(status: str = "FINISHED") -> None:
    """End the active run (flush, then set its status)."""
    run = _active
    if run is not None:
        run.end(status)


def _current() -> Run:
    run = _active
    return run if run is not None else _auto_start()


def _auto_start() -> Run:
    with _lock:
        return _active if _active is not None else start_run()


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    """Log to the active run (starting one if there is none, as MLflow does)."""
    run = _active
    if run is None:
        run = _auto_start()
    run.log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    _current().log_metrics(metrics, step, timestamp)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _current().log_params(params)


def set_tag(key: str, value: Any) -> None:
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _current().set_tags(tags)


def log_artifact(local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
    _current().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
    _current().log_artifacts(local_dir, artifact_path)


def flush(timeout: float | None = None) -> None:
    """Wait until the active run's logged data is acknowledged."""
    run = _active
    if run is not None:
        run.flush(timeout)


# --- interpreter exit --------------------------------------------------------------------------


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def remember_uncaught(exc_type, exc, tb):
        global _uncaught
        _uncaught = exc_type
        previous(exc_type, exc, tb)

    sys.excepthook = remember_uncaught
    atexit.register(_end_at_exit)


def _end_at_exit() -> None:
    """A run still active when the interpreter exits is flushed and ended, as its script ended."""
    run = _active
    if run is None:
        return
    if _uncaught is None:
        status = "FINISHED"
    elif issubclass(_uncaught, KeyboardInterrupt):
        status = "KILLED"
    else:
        status = "FAILED"
    try:
        run._end(status, raise_errors=False)
    except Exception as exc:  # exiting anyway: say what happened, never hide it
        print(f"cellar: could not end run {run.run_id}: {exc}", file=sys.stderr)
