"""Keeps the serve state in step with the control plane.

Each poll is a conditional GET of every deployment's manifest. On a change, versions not yet in
memory are loaded first (a version loads once per process and is shared by the deployments
that route to it), then the new tables replace the old in one assignment: requests in flight
finish on the table they started with, new ones see the new table, none fails. A version that
fails to load is reported unhealthy with its error and left out; traffic stays on the versions
that loaded, or on the previous table's when none did; the load is tried again every
retry_seconds (CELLAR_SERVE_RETRY_SECONDS). Nothing a model does stops this thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from cellar.artifacts import ArtifactStore, store_from_url
from cellar_worker.serve.config import ServeConfig
from cellar_worker.serve.control import ControlClient, ControlError
from cellar_worker.serve.loader import Predictor, load_version
from cellar_worker.serve.routing import DeploymentTable, build_table

logger = logging.getLogger("cellar.serve.sync")


@dataclass
class ServeState:
    """What the request path reads. Both dicts are replaced whole, never mutated."""

    tables: dict[tuple[str, str], DeploymentTable] = field(default_factory=dict)
    # Deployments that exist but cannot serve (no version loaded yet): the reason, for a 503.
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)
    synced: bool = False

    def predict_with(self, version_id: str, rows: Any) -> list:
        """Predict with one loaded version by id (records or columns), whatever routes to it."""
        for table in self.tables.values():
            predictor = table.predictors.get(str(version_id))
            if predictor is not None:
                return predictor.predict_rows(rows)
        raise KeyError(f"model version {version_id} is not loaded in this serve process")


def _fingerprint(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest.get("files") or {}, sort_keys=True).encode()).hexdigest()


class Syncer:
    def __init__(self, config: ServeConfig, state: ServeState, *, store: ArtifactStore | None = None):
        self.config = config
        self.state = state
        self.control = ControlClient(config)
        self.store = store or store_from_url(config.artifact_store_url)
        self._loaded: dict[tuple[str, str, str], Predictor] = {}  # (team, version, files) → predictor
        self._failed: dict[tuple[str, str, str], tuple[str, float]] = {}  # same key → (error, when)
        self._manifests: list[dict[str, Any]] = []
        self._pending_health: list[dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.first_sync = threading.Event()

    def start(self) -> Syncer:
        self._thread = threading.Thread(target=self._run, name="serve-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except ControlError as exc:
                logger.warning("%s", exc)
            except Exception:  # never let the sync thread die
                logger.exception("route sync failed")
            self._stop.wait(self.config.poll_seconds)

    def poll_once(self) -> bool:
        """One poll; True when the tables changed."""
        manifests = self.control.routes()
        changed = manifests is not None
        if changed:
            self._manifests = manifests
            self._apply(manifests)
        elif self._retry_due():
            # A failed load is tried again after retry_seconds (a store outage is not forever).
            self._apply(self._manifests)
            changed = True
        self.state.synced = True
        self.first_sync.set()
        if self._pending_health is not None:
            self.control.report_health(self._pending_health)
            self._pending_health = None
        return changed

    def _version(self, team: str, version_id: str, manifest: dict[str, Any] | None) -> tuple[Predictor | None, str]:
        if manifest is None:
            return None, f"model version {version_id} is not in the registry (deleted, or another team's)"
        key = (team, version_id, _fingerprint(manifest))
        if key in self._loaded:
            return self._loaded[key], ""
        if key in self._failed:
            error, when = self._failed[key]
            if time.monotonic() - when < self.config.retry_seconds:
                return None, error
        try:
            predictor = load_version(
                self.store,
                self.config.cache_dir,
                team,
                {**manifest, "id": version_id},
                probe_timeout=self.config.probe_seconds,
            )
        except (Exception, SystemExit) as exc:  # a model may raise anything (even exit) while unpickling
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            logger.error("model version %s (team %s) failed to load: %s", version_id, team, error)
            self._failed[key] = (error, time.monotonic())
            return None, error
        logger.info("loaded model version %s (team %s, flavor %s)", version_id, team, predictor.model.flavor)
        self._failed.pop(key, None)
        self._loaded[key] = predictor
        return predictor, ""

    def _retry_due(self) -> bool:
        now = time.monotonic()
        return any(now - when >= self.config.retry_seconds for _, when in self._failed.values())

    def _apply(self, manifests: list[dict[str, Any]]) -> None:
        tables: dict[tuple[str, str], DeploymentTable] = {}
        unavailable: dict[tuple[str, str], str] = {}
        health: list[dict[str, Any]] = []
        used: set[tuple[str, str, str]] = set()
        for manifest in manifests:
            team, name = manifest["team"], manifest["deployment"]
            loaded: dict[str, Predictor] = {}
            errors: list[str] = []
            for version_id, version_manifest in (manifest.get("models") or {}).items():
                predictor, error = self._version(team, str(version_id), version_manifest)
                if predictor is not None:
                    loaded[str(version_id)] = predictor
                    used.add((team, str(version_id), _fingerprint(version_manifest)))
                else:
                    errors.append(f"version {version_id}: {error}")
                health.append(
                    {
                        "deployment_id": manifest["id"],
                        "version_id": str(version_id),
                        "state": "ready" if predictor is not None else "failed",
                        "error": error,
                    }
                )
            table = build_table(manifest, loaded, self.state.tables.get((team, name)))
            if table is None:
                unavailable[(team, name)] = "; ".join(errors) or "this deployment routes to no model version"
            else:
                tables[(team, name)] = table
                # Versions the previous table kept serving stay loaded.
                used.update((team, v, _fingerprint(p.manifest)) for v, p in table.predictors.items())
        self.state.tables = tables
        self.state.unavailable = unavailable
        # Free versions nothing routes to any more, and forget failures nothing asks for.
        wanted = {
            (m["team"], str(v), _fingerprint(vm)) for m in manifests for v, vm in (m.get("models") or {}).items() if vm
        }
        for key in [k for k in self._loaded if k not in used]:
            del self._loaded[key]
        for key in [k for k in self._failed if k not in wanted]:
            del self._failed[key]
        self._pending_health = health
