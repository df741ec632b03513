"""Cellar's client for the JupyterHub REST API, authenticated by Cellar's service token.

Hub user names are Cellar user names (the hub signs users in through Cellar's OpenID
Connect provider with `preferred_username`), so every call here takes a Cellar user name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from cellar_server.core.exceptions import ServiceError
from cellar_server.workspaces import keys

STOPPED, STARTING, RUNNING, STOPPING = "stopped", "starting", "running", "stopping"


class HubUnavailable(ServiceError):
    def __init__(self, message: str):
        super().__init__("hub_unavailable", message, status_code=503)


@dataclass(frozen=True)
class ServerState:
    state: str  # stopped | starting | running | stopping
    profile: str = ""
    url: str = ""  # the server's path on the hub (/user/<name>/), when it has one
    ready: bool = False


def _quote(name: str) -> str:
    return quote(name, safe="")


class HubClient:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 10.0):
        self.url = (url or settings.CELLAR_HUB_API_URL).rstrip("/")
        self.token = token or keys.hub_api_token()
        self.timeout = timeout

    def _call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}"}
        try:
            return requests.request(
                method, f"{self.url}/hub/api/{path}", headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise HubUnavailable(
                f"The notebook hub at {self.url} does not answer ({exc.__class__.__name__}); "
                "is the `hub` process running?"
            ) from exc

    def _ok(self, response: requests.Response, *allowed: int) -> requests.Response:
        if response.status_code not in allowed:
            raise HubUnavailable(f"The notebook hub answered {response.status_code}: {response.text[:200]}")
        return response

    # --- users and groups ------------------------------------------------------------------

    def user(self, name: str) -> dict | None:
        response = self._call("GET", f"users/{_quote(name)}")
        if response.status_code == 404:
            return None
        return self._ok(response, 200).json()

    def user_ensure(self, name: str) -> dict:
        found = self.user(name)
        if found is not None:
            return found
        self._ok(self._call("POST", f"users/{_quote(name)}"), 201, 409)
        return self.user(name) or {"name": name, "groups": [], "servers": {}}

    def groups_set(self, name: str, groups: list[str], current: list[str]) -> None:
        """Make the hub user's groups exactly `groups` (Cellar's teams are the truth)."""
        for group in sorted(set(groups) - set(current)):
            self._ok(self._call("POST", f"groups/{_quote(group)}"), 201, 409)
            self._ok(self._call("POST", f"groups/{_quote(group)}/users", json={"users": [name]}), 200)
        for group in sorted(set(current) - set(groups)):
            self._ok(self._call("DELETE", f"groups/{_quote(group)}/users", json={"users": [name]}), 200, 404)

    # --- the user's default server ------------------------------------------------------------

    def server_state(self, name: str) -> ServerState:
        found = self.user(name)
        server = (found or {}).get("servers", {}).get("")
        if not server:
            return ServerState(STOPPED)
        profile = (server.get("user_options") or {}).get("profile", "")
        if server.get("pending") == "stop":
            return ServerState(STOPPING, profile)
        if server.get("ready"):
            return ServerState(RUNNING, profile, server.get("url") or "", True)
        return ServerState(STARTING, profile, server.get("url") or "")

    def server_start(self, name: str, *, profile: str) -> int:
        """201 started, 202 still spawning (poll server_state), 400 when it already runs."""
        response = self._call("POST", f"users/{_quote(name)}/server", json={"profile": profile})
        return self._ok(response, 201, 202, 400).status_code

    def server_stop(self, name: str) -> int:
        return self._ok(self._call("DELETE", f"users/{_quote(name)}/server"), 202, 204, 400).status_code

    # --- identifying a caller by a token the hub issued ------------------------------------------

    def identify(self, token: str) -> dict | None:
        """The hub's model of whoever holds `token` (a user's server token), else None."""
        response = self._call("GET", "user", token=token)
        if response.status_code in (401, 403):
            return None
        return self._ok(response, 200).json()
