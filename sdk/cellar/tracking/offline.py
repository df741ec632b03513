"""The offline folder: runs logged without a server, and batches an online run could not send.

One folder per run under $CELLAR_OFFLINE_DIR (default ~/.cellar/offline):

    <id>/meta.json       how to create (or find) the run on the server
    <id>/records.jsonl   append-only, one JSON object per line, in logging order:
                         {"kind": "param"|"tag", "key", "value"}
                         {"kind": "metric", "key", "value", "step", "timestamp"}
                         {"kind": "artifact", "path"}        (bytes in artifacts/<path>)
                         {"kind": "end", "status", "end_time"}
    <id>/artifacts/…     copies of logged files, taken when they were logged
    <id>/sync.json       `cellar sync`'s progress: the server's run id, lines sent, artifacts sent, done
    <id>/.lock           held (flock) by the process writing the folder; sync skips a held folder

meta.json carries `server_run_id` when the run already exists on a server (an online
run that spilled); sync then appends to that run instead of creating one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; sync then trusts the user not to overlap
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
META, RECORDS, STATE, LOCK, ARTIFACTS = "meta.json", "records.jsonl", "sync.json", ".lock", "artifacts"


class FolderBusy(Exception):
    """Another live process holds the folder (a run still logging, or another sync)."""


def encode_double(value: float) -> float | str:
    """MLflow's proto-JSON double: finite numbers as numbers, else "NaN" / "Infinity" / "-Infinity"."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def item_to_record(item: tuple) -> dict:
    kind = item[0]
    if kind == "m":
        return {
            "kind": "metric",
            "key": item[1],
            "value": encode_double(item[2]),
            "step": item[3],
            "timestamp": item[4],
        }
    if kind == "p":
        return {"kind": "param", "key": item[1], "value": item[2]}
    if kind == "t":
        return {"kind": "tag", "key": item[1], "value": item[2]}
    if kind == "a":
        return {"kind": "artifact", "path": item[1]}
    raise ValueError(f"unknown item {item!r}")


def record_to_item(record: dict) -> tuple | None:
    """The in-memory item for a param/tag/metric record; None for other records."""
    kind = record.get("kind")
    if kind == "metric":
        return ("m", record["key"], float(record["value"]), int(record["step"]), int(record["timestamp"]))
    if kind == "param":
        return ("p", record["key"], record["value"])
    if kind == "tag":
        return ("t", record["key"], record["value"])
    return None


def _write_json_atomic(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RunFolder:
    """One run's folder; see the module docstring for the layout."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._writer = None
        self.lines_written = 0

    @classmethod
    def create(cls, root: Path, meta: dict, *, name: str | None = None) -> RunFolder:
        root.mkdir(parents=True, exist_ok=True)
        path = root / (name or uuid.uuid4().hex)
        path.mkdir()
        folder = cls(path)
        folder.lock()
        _write_json_atomic(path / META, {"format": FORMAT, **meta})
        (path / RECORDS).touch()
        return folder

    @property
    def id(self) -> str:
        return self.path.name

    def meta(self) -> dict:
        return json.loads((self.path / META).read_text())

    def state(self) -> dict:
        try:
            return json.loads((self.path / STATE).read_text())
        except FileNotFoundError:
            return {}

    def save_state(self, state: dict) -> None:
        _write_json_atomic(self.path / STATE, state)

    # --- the lock: who may write or sync this folder ---------------------------------

    def lock(self) -> None:
        """Take the folder for this process; FolderBusy if another process holds it."""
        if self._lock_fd is not None or fcntl is None:
            return
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FolderBusy(f"{self.path} is in use by another process") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # --- records ----------------------------------------------------------------------

    def append(self, records: list[dict]) -> None:
        """Append records as complete lines, flushed to the operating system before returning."""
        if self._writer is None:
            self._writer = open(self.path / RECORDS, "a", encoding="utf-8")  # noqa: SIM115 - held open while logging
        self._writer.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._writer.flush()
        self.lines_written += len(records)

    def records(self, start: int = 0) -> Iterator[tuple[int, dict]]:
        """(line number, record) from line `start` on. A torn last line (a crash mid-write) is ignored."""
        with open(self.path / RECORDS, encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if not line.endswith("\n"):
                    return
                if number >= start:
                    yield number, json.loads(line)

    def copy_artifact(self, source: Path, artifact_path: str) -> None:
        target = self.path / ARTIFACTS / artifact_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def write_artifact_bytes(self, data: bytes, artifact_path: str) -> None:
        target = self.path / ARTIFACTS / artifact_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def artifact_file(self, artifact_path: str) -> Path:
        return self.path / ARTIFACTS / artifact_path

    def remove(self) -> None:
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)


class RecordReader:
    """Reads a folder's records.jsonl forward, including lines appended after it started."""

    def __init__(self, folder: RunFolder, start: int = 0):
        self._handle = open(folder.path / RECORDS, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.line = 0
        while self.line < start and self.read() is not None:
            pass

    def read(self) -> dict | None:
        position = self._handle.tell()
        line = self._handle.readline()
        if not line.endswith("\n"):
            self._handle.seek(position)  # a line still being written: read it next time
            return None
        self.line += 1
        return json.loads(line)

    def close(self) -> None:
        self._handle.close()


def list_folders(root: Path) -> list[RunFolder]:
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if (p / META).is_file()]
