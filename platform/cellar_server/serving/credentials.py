"""The serve credential: how serve processes prove they are ours when they read route manifests
and report health, prediction statistics and outbox records. Serve holds no database
credentials and no API token (ARCHITECTURE.md, "Trust boundary"); deployment keys authorize the
callers of /predict, and this one shared secret authorizes the process itself.

CELLAR_SERVE_TOKEN sets it; unset, it is derived from the server's secret key (like the worker
credential, compute/credentials.py) and `manage.py cellar_serve_token` prints it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

PREFIX = "csv_"


def serve_token() -> str:
    configured = getattr(settings, "CELLAR_SERVE_TOKEN", "") or ""
    if configured:
        return configured
    digest = hmac.new(settings.SECRET_KEY.encode(), b"cellar.serving.serve-credential", hashlib.sha256)
    return PREFIX + digest.hexdigest()


@dataclass(frozen=True)
class ServePrincipal:
    """request.user for a request made with the serve credential: no team, no scopes."""

    is_authenticated: bool = True
    is_staff: bool = False
    is_active: bool = True
    username: str = "serve"
    pk: None = None
    id: None = None

    def get_username(self) -> str:
        return self.username


class ServeCredentialAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        if hmac.compare_digest(header[1], serve_token().encode()):
            return (ServePrincipal(), "serve")
        raise exceptions.AuthenticationFailed("This is not this server's serve credential (CELLAR_SERVE_TOKEN).")

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="cellar-serve"'


class IsServe(BasePermission):
    message = "This endpoint takes the serve credential (CELLAR_SERVE_TOKEN) only."

    def has_permission(self, request, view) -> bool:
        return getattr(request, "auth", None) == "serve"
