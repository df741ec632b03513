"""Who we log as and where: `cellar.login()` or CELLAR_URL / CELLAR_TOKEN / CELLAR_TEAM.

The token names its team: `GET /api/v1/me/` lists only the token's team for a token
call. CELLAR_TEAM picks one when a caller spans several, and otherwise checks that the
token belongs to the team the user expects.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from cellar import token_file
from cellar.client import CellarAPIError, Client
from cellar.tracking.errors import ConfigurationError, TrackingError, TransientError

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0

T = TypeVar("T")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline_dir() -> Path:
    """Where offline runs and spilled batches live: $CELLAR_OFFLINE_DIR or ~/.cellar/offline."""
    raw = os.environ.get("CELLAR_OFFLINE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".cellar" / "offline"


def flush_timeout() -> float:
    """How long ending a run waits for the server before saving what is left for `cellar sync`."""
    return float(os.environ.get("CELLAR_FLUSH_TIMEOUT", "120"))


def max_queue() -> int:
    """Items a run keeps in memory while the server is away before spilling to the offline folder."""
    return int(os.environ.get("CELLAR_MAX_QUEUE", "1000000"))


class Transport:
    """HTTP to one team's MLflow-compatible API, with MLflow's error contract.

    One `requests.Session` per thread: the background sender and the caller's thread
    never share a connection pool.
    """

    def __init__(self, url: str, token: str, team: str, *, timeout: tuple[float, float] = (5.0, 60.0)):
        self.url = url.rstrip("/")
        self.team = team
        self.token = token
        self.token_from_file = False
        self.timeout = timeout
        self.base = f"{self.url}/t/{quote(team)}/mlflow"
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
            self._local.session = session
        if self.token_from_file:  # a workspace renews its kernel tokens: follow the file
            fresh = token_file.token_for(self.team)
            if fresh and fresh != self.token:
                self.token = fresh
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The one place a request leaves the SDK (tests make it fail here to cut a sync short)."""
        return self._session().request(method, url, timeout=self.timeout, **kwargs)

    def _checked(self, method: str, url: str, **kwargs: Any) -> dict:
        try:
            response = self._send(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code in RETRY_STATUSES:
            raise TransientError(f"HTTP {response.status_code} from {url}: {response.text[:200]}")
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body if isinstance(body, dict) else {}
            raise TrackingError(
                response.status_code,
                error.get("error_code", "HTTP_ERROR"),
                error.get("message") or response.text[:300],
            )
        return body if isinstance(body, dict) else {}

    def call(self, method: str, endpoint: str, body: dict | None = None) -> dict:
        """One MLflow REST call (`runs/log-batch`, …); GET sends `body` as query parameters."""
        url = f"{self.base}/api/2.0/mlflow/{endpoint}"
        if method == "GET":
            return self._checked(method, url, params=body)
        return self._checked(method, url, json=body)

    def put_artifact(self, path: str, data: bytes | Callable[[], Any]) -> None:
        """PUT one file under the team's artifact tree; `data` is bytes or a function opening the file."""
        url = f"{self.base}/api/2.0/mlflow-artifacts/artifacts/{quote(path, safe='/')}"
        if callable(data):
            with data() as stream:
                self._checked("PUT", url, data=stream)
        else:
            self._checked("PUT", url, data=data)


def retrying(
    action: Callable[[], T],
    *,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """Run `action` until it does not raise TransientError: backoff from 0.5 s doubling to 30 s.

    Gives up (re-raising the last TransientError) once `deadline` (a time.monotonic()
    value) would pass, or when `stop` is set.
    """
    delay = BACKOFF_START_S
    while True:
        try:
            return action()
        except TransientError as exc:
            now = time.monotonic()
            if deadline is not None and now + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP_S)


@dataclass
class Session:
    """A logged-in caller: the server, the token and the team the token belongs to."""

    url: str
    token: str
    team: str
    username: str = ""
    transport: Transport = field(init=False, repr=False)
    _experiments: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.transport = Transport(self.url, self.token, self.team)

    def experiment_id(self, name: str | None, *, deadline: float | None = None) -> str:
        """The id of the experiment called `name`, created if missing; None is the team's default "0"."""
        if not name:
            return "0"
        if name in self._experiments:
            return self._experiments[name]
        t = self.transport

        def by_name() -> str:
            return t.call("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]["experiment_id"]

        def resolve() -> str:
            try:
                return by_name()
            except TrackingError as exc:
                if exc.code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            try:
                return t.call("POST", "experiments/create", {"name": name})["experiment_id"]
            except TrackingError as exc:
                if exc.code != "RESOURCE_ALREADY_EXISTS":  # someone else created it meanwhile
                    raise
            return by_name()

        self._experiments[name] = retrying(resolve, deadline=deadline)
        return self._experiments[name]


_lock = threading.Lock()
_current: Session | None = None


def login(url: str | None = None, token: str | None = None, team: str | None = None) -> Session:
    """Check the token against the server and remember the session for the runs that follow.

    Each argument defaults to its variable: CELLAR_URL (else http://127.0.0.1:8000),
    CELLAR_TOKEN and CELLAR_TEAM. The team is the token's own; `team` only has to be
    given when the caller can see several, and is checked otherwise.
    """
    global _current
    url = (url or os.environ.get("CELLAR_URL") or token_file.url() or DEFAULT_URL).rstrip("/")
    team = team or os.environ.get("CELLAR_TEAM") or None
    from_file = not token and not os.environ.get("CELLAR_TOKEN") and token_file.read() is not None
    if from_file:  # a Cellar workspace: the server keeps a token per team in CELLAR_TOKEN_FILE
        team = team or token_file.default_team()
        token = token_file.token_for(team)
        if not token:
            teams = ", ".join(sorted((token_file.read() or {}).get("tokens") or {})) or "none yet"
            raise ConfigurationError(
                f"This workspace holds tokens for several teams ({teams}); pick one with CELLAR_TEAM "
                "or cellar.login(team=...)."
            )
    token = token or os.environ.get("CELLAR_TOKEN")
    if not token:
        raise ConfigurationError(
            "No Cellar API token: call cellar.login(url, token) or set CELLAR_TOKEN "
            "(mint one on your team's Tokens page), or log offline with CELLAR_OFFLINE=1."
        )
    client = Client(url, token, timeout=30.0)
    try:
        me = retrying(lambda: _whoami(client), deadline=time.monotonic() + 10)
    except CellarAPIError as exc:
        if exc.status == 403 and team:
            me = {"username": "", "teams": [{"slug": team}]}  # a narrow token (e.g. a step's) may not read /me/
        else:
            raise ConfigurationError(f"Cellar at {url} refused the token: {exc.message} ({exc.code})") from exc
    except TransientError as exc:
        raise ConfigurationError(f"Cannot reach Cellar at {url}: {exc}") from exc
    slugs = [t["slug"] for t in me.get("teams", [])]
    if team is None:
        if len(slugs) != 1:
            listing = ", ".join(slugs) or "none"
            raise ConfigurationError(f"The token can reach several teams ({listing}); pick one with CELLAR_TEAM.")
        team = slugs[0]
    elif team not in slugs:
        raise ConfigurationError(
            f"CELLAR_TEAM is '{team}' but this token belongs to {', '.join(slugs) or 'no team'}; "
            "mint a token in that team or unset CELLAR_TEAM."
        )
    session = Session(url=url, token=token, team=team, username=me.get("username", ""))
    session.transport.token_from_file = from_file
    with _lock:
        _current = session
    return session


def _whoami(client: Client) -> dict:
    try:
        return client.whoami()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"cannot reach {client.url}: {exc}") from exc
    except CellarAPIError as exc:
        if exc.status in RETRY_STATUSES:
            raise TransientError(f"HTTP {exc.status} from {client.url}") from exc
        raise


def current_session() -> Session:
    """The logged-in session, logging in from the environment the first time."""
    session = _current
    if session is not None:
        return session
    with _lock:
        if _current is not None:
            return _current
    return login()


def logout() -> None:
    """Forget the session (the next run logs in again from the environment)."""
    global _current
    with _lock:
        _current = None


CLIENT_RUN_ID_TAG = "cellar.client_run_id"


def create_run_once(
    transport: Transport,
    *,
    experiment_id: str,
    run_name: str | None,
    start_time: int,
    tags: dict[str, str],
    client_run_id: str,
    deadline: float | None,
    search_first: bool = False,
) -> dict:
    """runs/create that never makes two runs: every run carries its client-made id in a tag,
    and a retry first looks the run up by it (the answer to the first try may have been lost).
    `search_first` looks before the first try too: `cellar sync` resuming after a crash."""
    body: dict[str, Any] = {
        "experiment_id": experiment_id,
        "start_time": start_time,
        "tags": [{"key": k, "value": v} for k, v in {**tags, CLIENT_RUN_ID_TAG: client_run_id}.items()],
    }
    if run_name:
        body["run_name"] = run_name
    tried = search_first

    def attempt() -> dict:
        nonlocal tried
        if tried:
            found = transport.call(
                "POST",
                "runs/search",
                {
                    "experiment_ids": [experiment_id],
                    "filter": f"tags.`{CLIENT_RUN_ID_TAG}` = '{client_run_id}'",
                    "max_results": 1,
                },
            ).get("runs")
            if found:
                return found[0]
        tried = True
        return transport.call("POST", "runs/create", body)["run"]

    return retrying(attempt, deadline=deadline)
