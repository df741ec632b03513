"""Roles and the scopes they grant (ARCHITECTURE.md, "Tenancy and roles").

Each role includes every scope of the roles below it. API tokens carry a
subset of their user's scopes; a request's effective scopes are the token's
scopes intersected with what the user's role grants *now*, so demoting a
member also narrows their tokens.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"


ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER]

_VIEWER = {
    "team:read",
    "members:read",
    "quotas:read",
    "tokens:write",  # mint and revoke one's own tokens
    "experiments:read",
    "pipelines:read",
    "models:read",
    "deployments:read",
    "abtests:read",
    "compute:read",
    "data:read",
}
_EDITOR = _VIEWER | {
    "experiments:write",
    "pipelines:write",
    "pipelines:run",
    "models:write",
    "data:write",
}
_ADMIN = _EDITOR | {
    "team:write",
    "members:write",
    "tokens:admin",
    "audit:read",
    "pipelines:promote",
    "models:promote",
    "deployments:write",
    "abtests:write",
}
_OWNER = _ADMIN | {"team:delete"}

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.EDITOR: frozenset(_EDITOR),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}

ALL_SCOPES: frozenset[str] = ROLE_SCOPES[Role.OWNER] | {"quotas:write"}

# Platform admins (staff) edit quotas and pools; they can read any team to do so.
STAFF_SCOPES: frozenset[str] = frozenset({"team:read", "members:read", "quotas:read", "quotas:write", "compute:read"})


def scopes_for(role: str | None, *, is_staff: bool = False) -> frozenset[str]:
    scopes = ROLE_SCOPES[Role(role)] if role else frozenset()
    return scopes | STAFF_SCOPES if is_staff else scopes


def role_at_least(role: str, minimum: Role) -> bool:
    return ROLE_ORDER.index(Role(role)) >= ROLE_ORDER.index(minimum)
