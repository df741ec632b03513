"""The control-plane client: route manifests (conditional GET) and health reports."""

from __future__ import annotations

from typing import Any

import requests

from cellar_worker.serve.config import ServeConfig


class ControlError(RuntimeError):
    pass


class ControlClient:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {config.token}"
        self.etag: str | None = None

    def routes(self) -> list[dict[str, Any]] | None:
        """Every deployment's manifest, or None when unchanged since the last call (304)."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            response = self.session.get(self.config.url("/api/v1/serving/routes/"), headers=headers, timeout=10)
        except requests.RequestException as exc:
            raise ControlError(f"control plane unreachable: {exc}") from exc
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise ControlError(f"GET routes answered {response.status_code}: {response.text[:300]}")
        self.etag = response.headers.get("ETag")
        return response.json()["deployments"]

    def report_health(self, versions: list[dict[str, Any]]) -> None:
        try:
            response = self.session.post(
                self.config.url("/api/v1/serving/health/"),
                json={"reporter": self.config.name, "versions": versions},
                timeout=10,
            )
        except requests.RequestException as exc:
            raise ControlError(f"control plane unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ControlError(f"POST health answered {response.status_code}: {response.text[:300]}")
