"""Serve settings, all from the environment (safe local defaults)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("CELLAR_HOME", "var")).resolve()


@dataclass(frozen=True)
class ServeConfig:
    api_url: str = field(default_factory=lambda: os.environ.get("CELLAR_API_URL", "http://127.0.0.1:8000"))
    token: str = field(default_factory=lambda: os.environ.get("CELLAR_SERVE_TOKEN", ""))
    artifact_store_url: str = field(
        default_factory=lambda: os.environ.get("ARTIFACT_STORE_URL") or f"file://{_home() / 'artifacts'}"
    )
    cache_dir: Path = field(
        default_factory=lambda: Path(
            os.environ.get("CELLAR_SERVE_CACHE") or Path(tempfile.gettempdir()) / f"cellar-serve-{os.getuid()}"
        )
    )
    # Seconds between route polls (each is one conditional GET: 304 when nothing changed).
    poll_seconds: float = field(default_factory=lambda: float(os.environ.get("CELLAR_SERVE_POLL_SECONDS", "1.0")))
    # Each new version is first loaded in a throwaway process (a model that crashes the interpreter
    # while unpickling takes the probe down, not serve), within this many seconds; 0 turns probes off.
    probe_seconds: float = field(default_factory=lambda: float(os.environ.get("CELLAR_SERVE_PROBE_SECONDS", "300")))
    # Seconds before a version that failed to load is tried again.
    retry_seconds: float = field(default_factory=lambda: float(os.environ.get("CELLAR_SERVE_RETRY_SECONDS", "60")))
    # Seconds between outbox flushes, and the most records one POST carries.
    flush_seconds: float = field(default_factory=lambda: float(os.environ.get("CELLAR_SERVE_FLUSH_SECONDS", "2.0")))
    flush_max: int = field(default_factory=lambda: int(os.environ.get("CELLAR_SERVE_FLUSH_MAX", "2000")))
    # Records the outbox holds while the control plane is unreachable; the oldest go first.
    outbox_capacity: int = field(default_factory=lambda: int(os.environ.get("CELLAR_SERVE_OUTBOX_CAPACITY", "100000")))
    # Largest request body accepted (bytes).
    max_body: int = field(default_factory=lambda: int(os.environ.get("CELLAR_SERVE_MAX_BODY", str(32 * 1024 * 1024))))
    name: str = field(default_factory=lambda: os.environ.get("CELLAR_SERVE_NAME", f"serve@{os.uname().nodename}"))

    def url(self, path: str) -> str:
        return self.api_url.rstrip("/") + path
