"""`cellar sync`: send the offline folder's runs to the server, resumably and idempotently.

Per folder, in order: find or create the experiment and the run (a run carries its
client-made id in a tag, so a sync that crashed right after creating it finds it
again), send the records as log-batches, upload the artifacts, set the final status,
and mark the folder done. Progress is saved in the folder's sync.json after each step;
an interrupted sync resumes where it stopped, and anything sent twice is a no-op on
the server (metric points are unique, params write-once, tags last-wins).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellar.tracking import session as sessions
from cellar.tracking.batcher import BatchBuilder, HttpSink, _split_refused
from cellar.tracking.errors import ConfigurationError, TrackingError, TransientError
from cellar.tracking.offline import FolderBusy, RunFolder, list_folders, record_to_item

SYNCED, ALREADY, BUSY, FAILED, REFUSED = "synced", "already synced", "busy", "failed", "synced with refusals"


@dataclass
class SyncResult:
    folder: Path
    outcome: str
    run_id: str | None = None
    records: int = 0
    artifacts: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in (SYNCED, ALREADY, BUSY)


def sync_runs(
    session: sessions.Session | None = None,
    root: Path | None = None,
    *,
    only: list[str] | None = None,
    retry_for: float = 60.0,
    report: Callable[[SyncResult], None] | None = None,
) -> list[SyncResult]:
    """Sync every folder under `root` (default: the offline folder), or those whose names start
    with one of `only`. A request is retried for up to `retry_for` seconds before the folder is
    left for the next sync."""
    session = session or sessions.current_session()
    root = root or sessions.offline_dir()
    results = []
    for folder in list_folders(root):
        if only and not any(folder.id.startswith(prefix) for prefix in only):
            continue
        result = sync_folder(session, folder, retry_for=retry_for)
        results.append(result)
        if report is not None:
            report(result)
    return results


def sync_folder(session: sessions.Session, folder: RunFolder, *, retry_for: float = 60.0) -> SyncResult:
    try:
        folder.lock()
    except FolderBusy:
        return SyncResult(folder.path, BUSY, messages=["a process is still logging to it (or syncing it)"])
    try:
        state = folder.state()
        if state.get("done"):
            return SyncResult(folder.path, ALREADY, state.get("run_id"))
        syncer = _Syncer(session, folder, state, retry_for)
        try:
            return syncer.run()
        except (TrackingError, TransientError, ConfigurationError) as exc:
            result = syncer.result
            result.outcome = FAILED
            result.run_id = syncer.state.get("run_id")
            result.messages.append(exc.message if isinstance(exc, TrackingError) else str(exc))
            return result
    finally:
        folder.unlock()


class _Syncer:
    def __init__(self, session: sessions.Session, folder: RunFolder, state: dict, retry_for: float):
        self.session = session
        self.transport = session.transport
        self.folder = folder
        self.meta = folder.meta()
        self.state = state
        self.retry_for = retry_for
        self.result = SyncResult(folder.path, SYNCED)

    def _retrying(self, action):
        return sessions.retrying(action, deadline=time.monotonic() + self.retry_for)

    def _save(self, **changes) -> None:
        self.state.update(changes)
        self.folder.save_state(self.state)

    def run(self) -> SyncResult:
        run_id = self._run_id()
        self.result.run_id = run_id
        artifacts, end = self._send_records(run_id)
        self._upload_artifacts(run_id, artifacts)
        self._finish(run_id, end)
        self._save(done=True)
        if self.state.get("refused"):
            self.result.outcome = REFUSED
            self.result.messages = list(self.state["refused"])
        return self.result

    def _run_id(self) -> str:
        if self.state.get("run_id"):
            return self.state["run_id"]
        meta = self.meta
        if meta.get("server_run_id"):
            if meta.get("team") and meta["team"] != self.session.team:
                raise ConfigurationError(
                    f"{self.folder.path} belongs to run {meta['server_run_id']} of team '{meta['team']}' "
                    f"at {meta.get('url')}; sync it with a token of that team."
                )
            run_id = meta["server_run_id"]
        else:
            deadline = time.monotonic() + self.retry_for
            experiment_id = meta.get("experiment_id") or self.session.experiment_id(
                meta.get("experiment"), deadline=deadline
            )
            info = sessions.create_run_once(
                self.transport,
                experiment_id=experiment_id,
                run_name=meta.get("run_name"),
                start_time=meta["start_time"],
                tags=meta.get("tags") or {},
                client_run_id=meta["client_run_id"],
                deadline=deadline,
                search_first=True,
            )["info"]
            run_id = info["run_id"]
        self._save(run_id=run_id)
        return run_id

    def _send_records(self, run_id: str) -> tuple[list[str], dict | None]:
        """Send every param/tag/metric record not yet acknowledged; returns the artifact paths and
        the end record, which are handled afterwards."""
        sink = HttpSink(self.transport, run_id)
        done = self.state.get("records_done", 0)
        artifacts: list[str] = []
        end = None
        builder = BatchBuilder()
        number = -1
        for number, record in self.folder.records():
            kind = record.get("kind")
            if kind == "artifact":
                artifacts.append(record["path"])
            elif kind == "end":
                end = record
            elif number >= done and (item := record_to_item(record)) is not None:
                if not builder.add(item):
                    self._send(sink, builder.items)
                    self._save(records_done=number)  # every line before this one is handled
                    builder = BatchBuilder()
                    builder.add(item)
        if builder.items:
            self._send(sink, builder.items)
        if number + 1 > done:
            self._save(records_done=number + 1)
        return artifacts, end

    def _send(self, sink: HttpSink, items: list[tuple]) -> None:
        parts = [items]
        while parts:
            part = parts.pop(0)
            try:
                self._retrying(lambda part=part: sink.write(part))
            except TrackingError as exc:
                split = _split_refused(part)
                if split is not None:
                    parts[0:0] = split
                    continue
                refused = self.state.setdefault("refused", [])
                refused.append(f"{len(part)} item(s) refused: {exc.message}")
                continue
            self.result.records += len(part)

    def _upload_artifacts(self, run_id: str, paths: list[str]) -> None:
        if not paths:
            return
        sent = set(self.state.get("artifacts_done", []))
        info = self._retrying(lambda: self.transport.call("GET", "runs/get", {"run_id": run_id}))["run"]["info"]
        root = info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
        for path in dict.fromkeys(paths):
            if path in sent:
                continue
            file = self.folder.artifact_file(path)
            if not file.is_file():
                self.state.setdefault("refused", []).append(f"artifact {path}: its copy is missing from {file}")
                continue
            self._retrying(
                lambda file=file, path=path: self.transport.put_artifact(f"{root}/{path}", lambda: file.open("rb"))
            )
            sent.add(path)
            self.result.artifacts += 1
            self._save(artifacts_done=sorted(sent))

    def _upload(self, path: str, file: Path) -> None:
        self._retrying(lambda: self.transport.put_artifact(path, lambda: file.open("rb")))

    def _finish(self, run_id: str, end: dict | None) -> None:
        if end is None:
            if self.meta.get("server_run_id"):
                return  # batches an online run could not send: its own process set (or sets) the status
            # The logging process died before ending the run.
            end = {"status": "FAILED", "end_time": int(time.time() * 1000)}
            self.result.messages.append("the run never ended (its process stopped first); marked FAILED")
        body = {"run_id": run_id, "status": end["status"], "end_time": end["end_time"]}
        self._retrying(lambda: self.transport.call("POST", "runs/update", body))
