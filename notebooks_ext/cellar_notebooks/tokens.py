"""Keeps the kernel token file fresh while the server runs.

The server trades the token the hub gave it ($JUPYTERHUB_API_TOKEN) for Cellar kernel tokens
(one per team; tracking and pipelines scopes) at start, and again once Cellar's `renew_after`
has passed (half their life), so kernels never hold an expired token. The file
($CELLAR_TOKEN_FILE, mode 0600) is replaced atomically; the SDK rereads it
(cellar/token_file.py), so running kernels pick up renewed tokens without a restart.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback

CHECK_SECONDS = float(os.environ.get("CELLAR_TOKEN_CHECK_SECONDS", "60"))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class KernelTokenKeeper:
    def __init__(self, *, url: str, hub_token: str, path: Path, log):
        self.url = url.rstrip("/")
        self.hub_token = hub_token
        self.path = path
        self.log = log
        self._callback: PeriodicCallback | None = None

    @classmethod
    def from_environment(cls, *, log) -> KernelTokenKeeper:
        path = Path(os.environ.get("CELLAR_TOKEN_FILE") or Path.home() / ".cellar" / "token.json")
        return cls(
            url=os.environ.get("CELLAR_URL", "http://127.0.0.1:8000"),
            hub_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            path=path,
            log=log,
        )

    # --- reading ---------------------------------------------------------------------------------

    def read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def token_for(self, team: str) -> str | None:
        data = self.read() or {}
        return (data.get("tokens") or {}).get(team)

    def due(self, now: datetime | None = None) -> bool:
        data = self.read()
        if not data or not data.get("renew_after"):
            return True
        return (now or datetime.now(UTC)) >= _parse_time(data["renew_after"])

    # --- renewing ---------------------------------------------------------------------------------

    async def renew(self) -> dict:
        """Ask Cellar for fresh kernel tokens and write them (raises on refusal)."""
        request = HTTPRequest(
            f"{self.url}/api/v1/workspaces/kernel-tokens/",
            method="POST",
            body=b"",
            headers={"Authorization": f"token {self.hub_token}"},
            request_timeout=30,
        )
        response = await AsyncHTTPClient().fetch(request)
        data = json.loads(response.body)
        payload = {
            "url": data.get("url") or self.url,
            "username": data.get("username", ""),
            "tokens": data["tokens"],
            "team": sorted(data["tokens"])[0] if len(data["tokens"]) == 1 else "",
            "expires_at": data["expires_at"],
            "renew_after": data["renew_after"],
        }
        self.write(payload)
        self.log.info(
            "cellar_notebooks: kernel tokens renewed for %s (until %s)", sorted(data["tokens"]), data["expires_at"]
        )
        return payload

    def write(self, payload: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, self.path)

    def age_seconds(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return float("inf")

    async def renew_now(self) -> None:
        """Renew regardless of `renew_after` (a team joined since), quietly on failure."""
        if self.hub_token:
            await self._renew_logged()

    async def renew_if_due(self) -> None:
        if not self.hub_token or not self.due():
            return
        await self._renew_logged()

    async def _renew_logged(self) -> None:
        try:
            await self.renew()
        except (HTTPClientError, OSError, ValueError, KeyError) as exc:
            # Try again at the next check; kernels keep the previous (still valid) token meanwhile.
            self.log.warning("cellar_notebooks: could not renew kernel tokens from %s: %s", self.url, exc)

    def start(self) -> None:
        from tornado.ioloop import IOLoop

        IOLoop.current().add_callback(self.renew_if_due)
        self._callback = PeriodicCallback(self.renew_if_due, CHECK_SECONDS * 1000)
        self._callback.start()
