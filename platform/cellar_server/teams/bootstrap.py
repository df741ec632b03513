"""Idempotent set-up of a user, a team and a token (for `make up` and scripts)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cellar_server.teams import selectors, services
from cellar_server.teams.actors import SYSTEM, Actor
from cellar_server.teams.models import Team
from cellar_server.teams.tokens import parse_api_token, secrets_match

BOOTSTRAP_TOKEN_NAME = "bootstrap"


@dataclass
class BootstrapResult:
    token: str | None = None
    lines: list[str] = field(default_factory=list)


def _file_token_still_valid(path: Path | None, team: Team) -> bool:
    if path is None or not path.is_file():
        return False
    raw = path.read_text().strip()
    prefix = parse_api_token(raw)
    token = selectors.api_token_for_prefix(prefix) if prefix else None
    return bool(
        token and token.team_id == team.id and token.status == "active" and secrets_match(raw, token.token_hash)
    )


def bootstrap(
    *, team_slug: str, username: str, password: str, email: str = "", staff: bool = False, token_file: Path | None
) -> BootstrapResult:
    services.team_slug_validate(team_slug)
    result = BootstrapResult()
    user, created = services.user_ensure(username=username, password=password, email=email, is_staff=staff)
    result.lines.append(f"user {username}: {'created' if created else 'exists'}")
    team = Team.objects.filter(slug=team_slug).first()
    if team is None:
        team = services.team_create(actor=SYSTEM, slug=team_slug, name=team_slug, owner=user)
        result.lines.append(f"team {team_slug}: created, {username} is owner")
    else:
        result.lines.append(f"team {team_slug}: exists")
        if not any(t.id == team.id for t, _ in selectors.teams_for_user(user=user)):
            invitation, raw = services.invitation_create(actor=SYSTEM, team=team, role="owner")
            services.invitation_accept(user=user, raw=raw)
            result.lines.append(f"{username} joined {team_slug} as owner")
    if _file_token_still_valid(token_file, team):
        result.lines.append(f"token: {token_file} still valid, kept")
        return result
    _, raw = services.api_token_create(
        actor=Actor(user=user), team=team, name=BOOTSTRAP_TOKEN_NAME, expires_in_days=None
    )
    result.token = raw
    if token_file is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(raw + "\n")
        os.chmod(token_file, 0o600)
        result.lines.append(f"token: written to {token_file}")
    else:
        result.lines.append(f"token (shown once): {raw}")
    return result
