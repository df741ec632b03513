"""Tokens a Cellar notebook server keeps fresh for its kernels ($CELLAR_TOKEN_FILE).

In a Cellar workspace the server extension trades the hub's token for Cellar kernel tokens
(one per team, tracking and pipelines scopes) and rewrites this JSON file before they expire:

    {"url": "...", "username": "...", "team": "<default or ''>",
     "tokens": {"<team>": "cellar_..."}, "expires_at": "...", "renew_after": "..."}

CELLAR_TOKEN, when set, always wins; the file is the fallback. Readers go through `token_for`,
which rereads the file whenever it changed, so a long-running kernel follows the renewals.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

_cache: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


def path() -> Path | None:
    raw = os.environ.get("CELLAR_TOKEN_FILE")
    return Path(raw).expanduser() if raw else None


def read(file: Path | None = None) -> dict | None:
    """The file's content (cached until its modification time changes), or None without one."""
    file = file or path()
    if file is None:
        return None
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        return None
    key = str(file)
    with _lock:
        kept = _cache.get(key)
        if kept is not None and kept[0] == mtime:
            return kept[1]
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    with _lock:
        _cache[key] = (mtime, data)
    return data


def default_team(data: dict | None = None) -> str | None:
    """CELLAR_TEAM, else the file's own default, else its only team."""
    data = data if data is not None else read()
    if os.environ.get("CELLAR_TEAM"):
        return os.environ["CELLAR_TEAM"]
    if not data:
        return None
    tokens = data.get("tokens") or {}
    return data.get("team") or (next(iter(tokens)) if len(tokens) == 1 else None)


def token_for(team: str | None = None) -> str | None:
    """The current kernel token for `team` (default: default_team()), or None."""
    data = read()
    if not data:
        return None
    team = team or default_team(data)
    return (data.get("tokens") or {}).get(team) if team else None


def url() -> str | None:
    data = read()
    return data.get("url") if data else None
