"""A small client for Cellar's REST API (`/api/v1/`), authenticated by an API token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import requests

from cellar import token_file


class CellarAPIError(Exception):
    """An error answered by the API, with its stable code and human message."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class Client:
    """`Client(url, token)`; both default to the CELLAR_URL and CELLAR_TOKEN variables."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0):
        self.url = (url or os.environ.get("CELLAR_URL") or token_file.url() or "http://127.0.0.1:8000").rstrip("/")
        # In a Cellar workspace the token comes from the file its server keeps fresh (token_file.py).
        self.token = token or os.environ.get("CELLAR_TOKEN") or token_file.token_for()
        self.timeout = timeout
        self._session = requests.Session()
        if self.token:
            self._session.headers["Authorization"] = f"Bearer {self.token}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            raise CellarAPIError(
                response.status_code,
                error.get("code", "http_error"),
                error.get("message", response.text[:200]),
                error.get("detail"),
            )
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def paginate(self, path: str, **params: Any) -> Iterator[dict]:
        """Yield every item of a paginated list, following the pages."""
        params = {k: v for k, v in params.items() if v not in (None, "")}
        params.setdefault("page_size", 500)
        page = 1
        while True:
            body = self.get(path, **params, page=page)
            yield from body["results"]
            if not body.get("next"):
                return
            page += 1

    # --- conveniences -----------------------------------------------------------

    def whoami(self) -> dict:
        return self.get("me/")

    def teams(self) -> list[dict]:
        return list(self.paginate("teams/"))

    def members(self, team: str) -> list[dict]:
        return list(self.paginate(f"teams/{team}/members/"))

    def audit_events(self, team: str, **filters: Any) -> list[dict]:
        return list(self.paginate(f"teams/{team}/audit-events/", **filters))

    # --- pipelines ------------------------------------------------------------------

    def pipelines(self, team: str) -> list[dict]:
        return list(self.paginate(f"teams/{team}/pipelines/"))

    def pipeline_versions(self, team: str, pipeline: str) -> list[dict]:
        """Every version of a pipeline, newest first (summaries; `pipeline_version` has the steps)."""
        return list(self.paginate(f"teams/{team}/pipelines/{pipeline}/versions/"))

    def pipeline_version(self, team: str, pipeline: str, ref: str | int) -> dict:
        """One version by number (3), id or id prefix (8+ characters)."""
        return self.get(f"teams/{team}/pipelines/{pipeline}/versions/{ref}/")

    def pipeline_version_create(self, team: str, pipeline: str, notebook: dict, **fields: Any) -> dict:
        """Promote a notebook (its JSON as a dict); fields: cells, environment, production, notebook_name."""
        return self.post(f"teams/{team}/pipelines/{pipeline}/versions/", json={"notebook": notebook, **fields})

    def pipeline_diff(self, team: str, pipeline: str, old: str | int, new: str | int) -> dict:
        return self.get(f"teams/{team}/pipelines/{pipeline}/versions/{old}/diff/{new}/")

    def pipeline_production(self, team: str, pipeline: str) -> dict:
        """The production version and the alias's latest moves."""
        return self.get(f"teams/{team}/pipelines/{pipeline}/production/")

    def pipeline_promote(self, team: str, pipeline: str, version: str | int) -> dict:
        """Point the production alias at a version (needs pipelines:promote)."""
        return self.post(f"teams/{team}/pipelines/{pipeline}/production/", json={"version": str(version)})

    def pipeline_rollback(self, team: str, pipeline: str) -> dict:
        return self.post(f"teams/{team}/pipelines/{pipeline}/production/rollback/")
