"""Writes for secrets and connections. Every change is audited; no value ever is."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from django.db import IntegrityError, transaction
from django.utils import timezone

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.data import crypto
from cellar_server.data.models import CONNECTION_KINDS, HTTP, S3, SQL, Connection, RetentionPolicy, Secret
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
MAX_VALUE_BYTES = 64 * 1024

# Per kind: the config keys allowed, which are required, and which name secrets.
CONNECTION_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    SQL: {"allowed": ("url", "password_secret"), "required": ("url",), "secrets": ("password_secret",)},
    S3: {
        "allowed": ("bucket", "prefix", "endpoint_url", "region", "access_key_id_secret", "secret_access_key_secret"),
        "required": ("bucket",),
        "secrets": ("access_key_id_secret", "secret_access_key_secret"),
    },
    HTTP: {"allowed": ("url", "secret", "header"), "required": ("url",), "secrets": ("secret",)},
}


def _name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ServiceError(
            f"invalid_{what}_name",
            f"A {what} name is 1-63 lowercase letters, digits, '_' or '-', starting with a letter.",
        )
    return name


def _value(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ServiceError("invalid_secret_value", "A secret's value is a non-empty string.")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ServiceError("invalid_secret_value", f"A secret's value is at most {MAX_VALUE_BYTES} bytes.")
    return value


def _description(text: Any) -> str:
    if text is None:
        return ""
    if not isinstance(text, str) or len(text) > 500:
        raise ServiceError("invalid_description", "A description is a string of at most 500 characters.")
    return text


def _create_named(model, *, actor: Actor, team: Team, name: str, exists: tuple[str, str], **fields: Any):
    """Create a row unique per (team, name); a duplicate is 409 with `exists` (code, message)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return model.all_teams.create(
                team=team, name=name, created_at=now, updated_at=now, updated_by=actor.name, **fields
            )
    except IntegrityError:
        raise ServiceError(exists[0], exists[1], status_code=409) from None


# --- secrets -------------------------------------------------------------------------------


@transaction.atomic
def secret_create(*, actor: Actor, team: Team, name: str, value: str, description: str = "") -> Secret:
    name, value, description = _name(name, "secret"), _value(value), _description(description)
    secret = _create_named(
        Secret,
        actor=actor,
        team=team,
        name=name,
        exists=("secret_exists", f"A secret named '{name}' already exists; update it instead."),
        description=description,
        ciphertext=crypto.encrypt(value),
    )
    audit_record(
        team=team, actor=actor, verb="secret.create", target_type="secret", target_id=secret.pk, target_repr=name
    )
    return secret


@transaction.atomic
def secret_update(*, actor: Actor, secret: Secret, value: str | None = None, description: str | None = None) -> Secret:
    changed = []
    if value is not None:
        secret.ciphertext = crypto.encrypt(_value(value))
        changed.append("value")
    if description is not None:
        secret.description = _description(description)
        changed.append("description")
    if not changed:
        raise ServiceError("nothing_to_update", "Send a new 'value', a new 'description', or both.")
    secret.updated_at, secret.updated_by = timezone.now(), actor.name
    secret.save(update_fields=["ciphertext", "description", "updated_at", "updated_by"])
    audit_record(
        team=secret.team,
        actor=actor,
        verb="secret.update",
        target_type="secret",
        target_id=secret.pk,
        target_repr=secret.name,
        details={"changed": changed},
    )
    return secret


@transaction.atomic
def secret_delete(*, actor: Actor, secret: Secret) -> None:
    with team_scope(secret.team_id):
        users = [c.name for c in Connection.objects.all() if secret.name in connection_secret_names(c)]
    if users:
        raise ServiceError(
            "secret_in_use",
            f"Connections {', '.join(sorted(users))} use secret '{secret.name}'; change or delete them first.",
            status_code=409,
        )
    audit_record(
        team=secret.team,
        actor=actor,
        verb="secret.delete",
        target_type="secret",
        target_id=secret.pk,
        target_repr=secret.name,
    )
    secret.delete()


def secret_value(*, secret: Secret) -> str:
    """The clear value. Only data/access.py calls this, after checking who asks."""
    return crypto.decrypt(secret.ciphertext)


def secrets_rotate(*, team: Team | None = None) -> int:
    """Re-encrypt every secret (of one team, or all) with the first key; returns how many."""
    rows = Secret.all_teams.all() if team is None else Secret.all_teams.filter(team=team)
    count = 0
    for secret in rows.iterator():
        Secret.all_teams.filter(pk=secret.pk).update(ciphertext=crypto.rotate(secret.ciphertext))
        count += 1
    return count


# --- connections -------------------------------------------------------------------------


def connection_secret_names(connection: Connection) -> set[str]:
    fields = CONNECTION_FIELDS.get(connection.kind, {}).get("secrets", ())
    return {connection.config[f] for f in fields if connection.config.get(f)}


def _config(team: Team, kind: str, config: Any) -> dict[str, Any]:
    if kind not in CONNECTION_FIELDS:
        kinds = ", ".join(k for k, _ in CONNECTION_KINDS)
        raise ServiceError("invalid_connection_kind", f"A connection's kind is one of: {kinds}.")
    if not isinstance(config, dict):
        raise ServiceError("invalid_connection_config", "A connection's 'config' is a JSON object.")
    spec = CONNECTION_FIELDS[kind]
    unknown = sorted(set(config) - set(spec["allowed"]))
    if unknown:
        raise ServiceError(
            "invalid_connection_config",
            f"Unknown {kind} connection fields: {', '.join(unknown)} (allowed: {', '.join(spec['allowed'])}).",
        )
    clean = {k: v for k, v in config.items() if v not in (None, "")}
    for key, value in clean.items():
        if not isinstance(value, str) or len(value) > 1000:
            raise ServiceError("invalid_connection_config", f"'{key}' is a string of at most 1000 characters.")
    missing = [k for k in spec["required"] if not clean.get(k)]
    if missing:
        raise ServiceError("invalid_connection_config", f"A {kind} connection needs: {', '.join(missing)}.")
    if "url" in clean:
        parsed = urlparse(clean["url"])
        if not parsed.scheme or not (parsed.netloc or parsed.path):
            raise ServiceError("invalid_connection_config", f"'{clean['url']}' is not a URL.")
        if parsed.password:
            raise ServiceError(
                "password_in_url",
                "Do not put a password in the URL: create a secret and name it in 'password_secret'.",
            )
    names = {clean[f] for f in spec["secrets"] if clean.get(f)}
    with team_scope(team.id):
        known = set(Secret.objects.filter(name__in=names).values_list("name", flat=True))
    if names - known:
        raise ServiceError(
            "secret_not_found",
            f"No secret named {', '.join(sorted(names - known))} in this team; create it on the data page first.",
        )
    return clean


@transaction.atomic
def connection_create(
    *, actor: Actor, team: Team, name: str, kind: str, config: dict[str, Any], description: str = ""
) -> Connection:
    name = _name(name, "connection")
    clean = _config(team, kind, config)
    connection = _create_named(
        Connection,
        actor=actor,
        team=team,
        name=name,
        exists=("connection_exists", f"A connection named '{name}' already exists."),
        kind=kind,
        config=clean,
        description=_description(description),
    )
    audit_record(
        team=team,
        actor=actor,
        verb="connection.create",
        target_type="connection",
        target_id=connection.pk,
        target_repr=name,
        details={"kind": kind, "config": clean},
    )
    return connection


@transaction.atomic
def connection_update(
    *, actor: Actor, connection: Connection, config: dict[str, Any] | None = None, description: str | None = None
) -> Connection:
    before = dict(connection.config)
    if config is not None:
        connection.config = _config(connection.team, connection.kind, config)
    if description is not None:
        connection.description = _description(description)
    connection.updated_at, connection.updated_by = timezone.now(), actor.name
    connection.save(update_fields=["config", "description", "updated_at", "updated_by"])
    audit_record(
        team=connection.team,
        actor=actor,
        verb="connection.update",
        target_type="connection",
        target_id=connection.pk,
        target_repr=connection.name,
        details={"config": {"from": before, "to": connection.config}},
    )
    return connection


@transaction.atomic
def connection_delete(*, actor: Actor, connection: Connection) -> None:
    audit_record(
        team=connection.team,
        actor=actor,
        verb="connection.delete",
        target_type="connection",
        target_id=connection.pk,
        target_repr=connection.name,
    )
    connection.delete()


def connection_test_record(*, connection: Connection, ok: bool, message: str) -> Connection:
    connection.last_test_ok, connection.last_test_at = ok, timezone.now()
    connection.last_test_message = message[:1000]
    connection.save(update_fields=["last_test_ok", "last_test_at", "last_test_message"])
    return connection


# --- retention -------------------------------------------------------------------------------


@transaction.atomic
def retention_policy_set(
    *, actor: Actor, team: Team, enabled: bool, keep_last_runs: int, expire_after_days: int
) -> RetentionPolicy:
    for label, value in (("keep_last_runs", keep_last_runs), ("expire_after_days", expire_after_days)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
            raise ServiceError("invalid_retention", f"'{label}' is a whole number from 0 to 100000.")
    if not isinstance(enabled, bool):
        raise ServiceError("invalid_retention", "'enabled' is true or false.")
    if enabled and expire_after_days < 1:
        raise ServiceError("invalid_retention", "'expire_after_days' is at least 1 while the policy is enabled.")
    policy, _ = RetentionPolicy.all_teams.select_for_update().get_or_create(team=team)
    before = {"enabled": policy.enabled, "keep_last_runs": policy.keep_last_runs, "days": policy.expire_after_days}
    policy.enabled, policy.keep_last_runs, policy.expire_after_days = enabled, keep_last_runs, expire_after_days
    policy.updated_at, policy.updated_by = timezone.now(), actor.name
    policy.save()
    after = {"enabled": enabled, "keep_last_runs": keep_last_runs, "days": expire_after_days}
    audit_record(
        team=team,
        actor=actor,
        verb="retention.update",
        target_type="retention",
        target_id=policy.pk,
        target_repr=team.slug,
        details={"from": before, "to": after},
    )
    return policy
