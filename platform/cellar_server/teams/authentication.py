"""`Authorization: Bearer <token>` for scripts and the SDK."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

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
    return token


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise TokenRejected("token_malformed", "Send the header as 'Authorization: Bearer <token>'.")
        token = token_from_secret(header[1].decode("latin-1"))
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
