"""The worker credential: how pool agents and autoscalers (the local supervisor, KEDA) prove
they are ours when they report heartbeats and read demand. Agents hold no API token and no
database credentials (ARCHITECTURE.md, "Trust boundary"); per-task tokens authorize task
work, and this one shared secret authorizes the machine-level reports.

CELLAR_WORKER_TOKEN sets it (a Kubernetes Secret, a compose variable); unset, it is derived
from the server's secret key, and `manage.py cellar_worker_token` prints it (`make up` exports
it to the supervisor that way).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

PREFIX = "cwk_"


def worker_token() -> str:
    configured = getattr(settings, "CELLAR_WORKER_TOKEN", "") or ""
    if configured:
        return configured
    digest = hmac.new(settings.SECRET_KEY.encode(), b"cellar.compute.worker-credential", hashlib.sha256)
    return PREFIX + digest.hexdigest()


def is_worker_token(raw: str) -> bool:
    return bool(raw) and hmac.compare_digest(raw.encode(), worker_token().encode())


@dataclass(frozen=True)
class WorkerPrincipal:
    """request.user for a request made with the worker credential: no team, no scopes."""

    is_authenticated: bool = True
    is_staff: bool = False
    is_active: bool = True
    username: str = "worker"
    pk: None = None
    id: None = None

    def get_username(self) -> str:
        return self.username


class WorkerCredentialAuthentication(BaseAuthentication):
    """`Authorization: Bearer <worker credential>`; any other bearer goes to the next class."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The bearer token is not text.") from None
        if not raw.startswith(PREFIX) and not getattr(settings, "CELLAR_WORKER_TOKEN", ""):
            return None
        if is_worker_token(raw):
            return (WorkerPrincipal(), "worker")
        if raw.startswith(PREFIX):
            raise exceptions.AuthenticationFailed("This worker credential is not this server's (CELLAR_WORKER_TOKEN).")
        return None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="cellar"'


def is_worker(request) -> bool:
    return getattr(request, "auth", None) == "worker"
