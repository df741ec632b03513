"""register_model / load_model over Cellar's REST API (no Django, no mlflow).

Registering saves the model in MLflow's directory format, uploads the files to a tracking run
(the step's own run inside a pipeline, the active run in a notebook, else a short run made for
it), then asks the server to register `runs:/<run>/<path>`: the run is the version's lineage.
Loading resolves `name@alias` / `name/3` / `name` to a manifest, downloads each file once into
a local cache keyed by its sha256 (checked), and loads it with `cellar.models.load_model`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cellar.client import CellarAPIError, Client
from cellar.models import LoadedModel, Signature, reference_profile, save_model
from cellar.models import load_model as load_model_dir


class RegistryError(Exception):
    """The registry refused a call: `code` is the server's stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class RegisteredVersion:
    name: str
    version: int
    id: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    alias: str | None = None
    alias_moved: bool = False
    gate: dict | None = None
    message: str = ""

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"

    def __repr__(self) -> str:
        moved = f", {self.alias}{' moved' if self.alias_moved else ' NOT moved'}" if self.alias else ""
        return f"<RegisteredVersion {self.name} v{self.version}{moved}>"


def _session():
    from cellar.tracking import session as sessions

    return sessions.current_session()


def _client() -> tuple[Client, str]:
    session = _session()
    return Client(session.url, session.token, timeout=120.0), session.team


def _call(fn, *args, **kwargs) -> Any:
    try:
        return fn(*args, **kwargs)
    except CellarAPIError as exc:
        raise RegistryError(exc.code, exc.message) from None


def register_model(
    obj: Any,
    name: str,
    *,
    metrics: dict[str, float] | None = None,
    signature: Signature | None = None,
    input_example: Any = None,
    training_data: Any = None,
    alias: str | None = None,
    gate: str | dict | None = None,
    description: str = "",
    tags: dict[str, str] | None = None,
    reason: str | None = None,
) -> RegisteredVersion:
    """Register `obj` as a new version of model `name`.

    metrics: the version's metrics (also logged to the run); the run's own metrics are kept too.
    training_data: profiled per feature for drift monitoring (`cellar.models.reference_profile`).
    alias / gate: move `alias` to the new version; with `gate` (a metric name, higher is better,
    or {"metric", "mode": "max"|"min", "min_delta"}) only if it beats the version the alias holds.
    The version is registered either way; the result says whether the alias moved and why.
    """
    from cellar.tracking import run as runs

    run = runs.active_run()
    started_here = run is None
    if started_here:
        run = runs.start_run(name=f"register {name}")  # inside a step this attaches to the step's run
        started_here = run.owned
    try:
        if run.offline:
            raise RegistryError("offline", "Registering a model needs the Cellar server; this run logs offline.")
        if metrics:
            run.log_metrics(metrics)
        relpath = f"registered-models/{name}/{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryDirectory(prefix="cellar-model-") as tmp:
            save_model(obj, Path(tmp) / "model", signature=signature, input_example=input_example)
            run.log_artifacts(Path(tmp) / "model", artifact_path=relpath)
        profile = reference_profile(training_data) if training_data is not None else None
        client, team = _client()
        body: dict[str, Any] = {
            "name": name,
            "source": f"runs:/{run.run_id}/{relpath}",
            "run_id": run.run_id,
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "profile": profile,
            "description": description,
            "tags": {str(k): str(v) for k, v in (tags or {}).items()},
        }
        if alias:
            body["alias"] = alias
        if gate:
            body["gate"] = gate
        if reason:
            body["reason"] = reason
        answer = _call(client.post, f"teams/{team}/models/-/register/", json=body)
    finally:
        if started_here:
            run.end()
    version = answer["version"]
    result = RegisteredVersion(
        name=version["model"],
        version=version["version"],
        id=version["id"],
        run_id=version["run_id"],
        metrics=version["metrics"],
        aliases=version["aliases"],
        alias=answer.get("alias"),
        alias_moved=answer.get("alias_moved", False),
        gate=answer.get("gate"),
        message=answer.get("message", ""),
    )
    if result.message:
        print(f"cellar: {result.message}")
    return result


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None) -> None:
    """Point `alias` at a version (needs the models:promote scope)."""
    client, team = _client()
    body = {"version": int(version), **({"reason": reason} if reason else {})}
    _call(
        client.request, "PUT", f"teams/{team}/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}/", json=body
    )


def model_manifest(ref: str) -> dict[str, Any]:
    """The manifest of `name@alias`, `name/3` or `name` (its latest version)."""
    client, team = _client()
    return _call(client.get, f"teams/{team}/models/-/resolve/", ref=ref)


def cache_dir() -> Path:
    raw = os.environ.get("CELLAR_MODEL_CACHE")
    return Path(raw).expanduser() if raw else Path.home() / ".cellar" / "models"


def _download(client: Client, team: str, manifest: dict[str, Any]) -> Path:
    """The version's files in a local folder, fetched once (content-addressed, hash-checked)."""
    key = hashlib.sha256(repr(sorted(manifest["files"].items())).encode()).hexdigest()[:32]
    target = cache_dir() / key
    if (target / "MLmodel").is_file():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".dl-", dir=_ensure(cache_dir())))
    try:
        model = quote(manifest["model"], safe="")
        base = f"{client.url}/api/v1/teams/{team}/models/{model}/versions/{manifest['version']}/files/"
        for relpath, sha in manifest["files"].items():
            response = client._session.get(base + quote(relpath), timeout=client.timeout, stream=True)
            if response.status_code != 200:
                raise RegistryError("download_failed", f"{relpath}: HTTP {response.status_code} {response.text[:200]}")
            digest = hashlib.sha256()
            path = staging / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != sha:
                raise RegistryError("corrupt_download", f"{relpath} does not match its sha256 {sha}")
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_model(ref: str) -> LoadedModel:
    """Load a registered version: `cellar.load_model("churn@champion")`, `"churn/3"` or `"churn"`."""
    client, team = _client()
    manifest = _call(client.get, f"teams/{team}/models/-/resolve/", ref=ref)
    loaded = load_model_dir(_download(client, team, manifest))
    loaded.metadata = {**loaded.metadata, "registry": {k: manifest[k] for k in ("id", "model", "version")}}
    return loaded
