"""HTTP to the engine API (`/api/v1/engine/…`): how the agent answers, never through the broker.

Every entry carries its task's token and lease (the server checks both); the client adds
the agent's worker id. Connection errors, timeouts and 5xx / 429 answers are retried with
exponential backoff until `retry_for` seconds have passed; any other 4xx is a refusal and
is not retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import requests

from cellar.pipelines.wire import Lease, TaskReport

logger = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class EngineError(Exception):
    def __init__(self, message: str, *, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class EngineUnavailable(EngineError):
    """The engine could not be reached (or kept failing) for the whole retry window."""


class EngineRefused(EngineError):
    """The engine answered with a 4xx: the request itself is wrong; retrying will not help."""


class EngineClient:
    def __init__(
        self,
        api_url: str,
        *,
        worker: str,
        timeout: float = 30.0,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ):
        self.api_url = api_url.rstrip("/")
        self.worker = worker
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        # requests.Session is not thread-safe: one per thread (batches and the heartbeat thread).
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every kept-alive connection (the server keeps a thread, and a database
        connection, per open one)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def claim(self, leases: Sequence[Lease], *, retry_for: float = 60.0) -> dict[str, Any]:
        """-> {"claimed": [id], "refused": {id: reason}}"""
        return self._post("claims/", {"tasks": [lease.to_dict() for lease in leases]}, retry_for)

    def heartbeat(self, leases: Sequence[Lease], *, retry_for: float = 0.0) -> dict[str, Any]:
        """-> {"alive": [id], "cancel": [id], "stale": [id]}"""
        return self._post("heartbeats/", {"tasks": [lease.to_dict() for lease in leases]}, retry_for)

    def report(self, reports: Sequence[TaskReport], *, retry_for: float = 300.0) -> dict[str, Any]:
        """-> {"accepted": [id], "refused": {id: reason}}"""
        return self._post("results/", {"results": [r.to_dict() for r in reports]}, retry_for)

    def _post(self, path: str, body: dict[str, Any], retry_for: float) -> dict[str, Any]:
        url = f"{self.api_url}/api/v1/engine/{path}"
        body = {"worker": self.worker, **body}
        deadline = time.monotonic() + retry_for
        delay = self.backoff
        while True:
            try:
                response = self._session().post(url, json=body, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem: str = f"cannot reach {url}: {exc}"
                status = None
            else:
                if response.status_code < 300:
                    return response.json()
                status = response.status_code
                detail = _body(response)
                if status not in RETRY_STATUSES:
                    raise EngineRefused(f"{url} answered HTTP {status}: {detail}", status=status, body=detail)
                problem = f"{url} answered HTTP {status}: {detail}"
            if time.monotonic() + delay > deadline:
                raise EngineUnavailable(problem, status=status)
            logger.warning("%s; retrying in %.1fs", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
