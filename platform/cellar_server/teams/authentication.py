"""`Authorization: Bearer <token>` for scripts and the SDK.

Every API call authenticates, so the check is on the hot path of logging. A process keeps
the parts of a token that do not change (its hash, scopes, team and user rows) for a minute,
and checks on every call, in one small query, what can change: that the token still exists,
is not revoked or expired, its user is active, and the user's current role and staff flag.
A revoked token or a changed role therefore takes effect on the next call, as before; only
a renamed team or user can look stale, for at most a minute. Anything unusual (an unknown
prefix, a wrong secret, a refusal) takes the full path, which gives the precise error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from cellar_server.core.task_tokens import task_grant
from cellar_server.teams import selectors, services
from cellar_server.teams.models import ApiToken
from cellar_server.teams.tokens import parse_api_token, secrets_match


class TokenRejected(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(detail=message)
        self.cellar_code = code


def token_from_secret(raw: str) -> ApiToken:
    """The live token for a raw secret, its use recorded; raises TokenRejected with a stable code."""
    prefix = parse_api_token(raw)
    token = _known_live_token(prefix, raw) if prefix else None
    if token is not None:
        return token
    token = selectors.api_token_for_prefix(prefix) if prefix else None
    if token is None or not secrets_match(raw, token.token_hash):
        raise TokenRejected("token_invalid", "This API token is not valid; mint a new one in the team's Tokens page.")
    if token.revoked_at is not None:
        raise TokenRejected("token_revoked", "This API token was revoked; mint a new one in the team's Tokens page.")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise TokenRejected(
            "token_expired",
            f"This API token expired on {token.expires_at:%Y-%m-%d}; mint a new one in the team's Tokens page.",
        )
    if not token.user.is_active:
        raise TokenRejected("user_inactive", "The account this token belongs to is disabled.")
    services.api_token_touch(token=token)
    _remember(prefix, token)
    return token


# --- the per-process token cache --------------------------------------------------------------

_KEEP_SECONDS = 60.0
_MAX_KEPT = 1024


@dataclass
class _Kept:
    token: ApiToken  # with .user, .team and .member_role loaded (selectors.api_token_for_prefix)
    loaded: float  # time.monotonic()


_kept: dict[str, _Kept] = {}
_kept_lock = threading.Lock()

# What may have changed since the token was loaded, in one round trip; no row means "take the full path".
_LIVE_SQL = """
SELECT u.is_staff,
       (SELECT m.role FROM teams_membership m WHERE m.team_id = t.team_id AND m.user_id = t.user_id),
       t.last_used_at IS NULL OR t.last_used_at <= %s
  FROM teams_apitoken t JOIN auth_user u ON u.id = t.user_id
 WHERE t.id = %s AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %s) AND u.is_active
"""


def _remember(prefix: str, token: ApiToken) -> None:
    with _kept_lock:
        if len(_kept) >= _MAX_KEPT:
            _kept.clear()
        _kept[prefix] = _Kept(token, time.monotonic())


def _known_live_token(prefix: str, raw: str) -> ApiToken | None:
    """The kept token for this secret if it is still good now, else None (then the full path decides)."""
    kept = _kept.get(prefix)
    if kept is None or time.monotonic() - kept.loaded > _KEEP_SECONDS:
        return None
    token = kept.token
    if not secrets_match(raw, token.token_hash):
        return None
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_SQL, [_db_datetime(now - services.LAST_USED_RESOLUTION), token.pk, _db_datetime(now)])
        row = cursor.fetchone()
    if row is None:
        with _kept_lock:
            _kept.pop(prefix, None)
        return None
    is_staff, role, stale_use = row
    token.user.is_staff, token.member_role = bool(is_staff), role
    if stale_use:
        ApiToken.all_teams.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now if stale_use else token.last_used_at
    return token


def _db_datetime(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise TokenRejected("token_malformed", "Send the header as 'Authorization: Bearer <token>'.")
        secret = header[1].decode("latin-1")
        try:
            token = token_from_secret(secret)
        except TokenRejected:
            if task_grant(secret) is not None:
                # A running step's own token: it may log to its run through the tracking API,
                # nothing here. 403 (not 401) tells the SDK the token is good but narrow.
                raise exceptions.PermissionDenied(
                    "A pipeline step's task token only logs to its own run (the MLflow-compatible tracking API)."
                ) from None
            raise
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
