"""Calls to the data API with the current session (a person's token, or a step's task token)."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import quote

from cellar.client import CellarAPIError, Client
from cellar.data import redact


class DataAccessError(Exception):
    """The server refused: not declared by the step, a viewer, or no such name. Says how to fix it."""


_lock = threading.Lock()
_client: tuple[tuple[str, str], Client] | None = None


def session_client() -> tuple[Client, str]:
    """(client, team) for the logged-in session (cellar.login / CELLAR_URL, CELLAR_TOKEN, CELLAR_TEAM)."""
    global _client
    from cellar.tracking.session import current_session

    session = current_session()
    key = (session.url, session.token)
    with _lock:
        if _client is None or _client[0] != key:
            _client = (key, Client(session.url, session.token))
        return _client[1], session.team


def call(method: str, path: str, **kwargs: Any) -> Any:
    client, team = session_client()
    try:
        return client.request(method, f"teams/{quote(team)}/{path}", **kwargs)
    except CellarAPIError as exc:
        raise DataAccessError(f"{exc.message} ({exc.code})") from None


def in_step() -> bool:
    """Running as a pipeline step (the executor sets CELLAR_RUN_ID and a task token)."""
    token = os.environ.get("CELLAR_TOKEN", "")
    return bool(os.environ.get("CELLAR_RUN_ID")) and bool(token) and not token.startswith("cellar_")


def secret_value(name: str) -> str:
    value = call("GET", f"secrets/{quote(name)}/value/")["value"]
    redact.remember(value, install=in_step())
    return value


def resolve_connection(name: str) -> dict[str, Any]:
    resolved = call("GET", f"connections/{quote(name)}/resolve/")
    for key in ("password", "access_key_id", "secret_access_key", "token"):
        if resolved["config"].get(key):
            redact.remember(resolved["config"][key], install=in_step())
    return resolved
