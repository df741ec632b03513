"""The data page (connections, secrets by name, data sets with their runs, retention and storage)
and the data set page."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from cellar_server.core.exceptions import ServiceError
from cellar_server.data import gc, probe, selectors, services
from cellar_server.data.models import CONNECTION_KINDS
from cellar_server.data.services import CONNECTION_FIELDS
from cellar_server.teams.pages import back_to, page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ, WRITE, ADMIN = "data:read", "data:write", "team:write"


def _require(access: TeamAccess, scope: str) -> None:
    if scope not in access.scopes:
        raise PermissionDenied(f"This needs the '{scope}' scope.")


def _delete(request: HttpRequest, access: TeamAccess, row, delete: Callable[[], None]) -> HttpResponse:
    """An admin's delete button: 404 for a name the team does not have, the service's refusal as a message."""
    _require(access, ADMIN)
    if row is None:
        raise Http404("Not found.")
    run_service(request, delete, success=f"{type(row).__name__} '{row.name}' deleted.")
    return back_to(access, "data:overview")


@team_page(READ)
def overview(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    team = access.team
    datasets = list(selectors.dataset_list(team=team)[:50])
    previews = selectors.dataset_runs_preview(datasets=datasets)
    context = {
        "access": access,
        "connections": list(selectors.connection_list(team=team)),
        "secrets": list(selectors.secret_list(team=team)),
        "datasets": [{"dataset": d, "runs": previews.get(d.pk, [])} for d in datasets],
        "policy": selectors.retention_policy(team=team),
        "sweeps": selectors.gc_sweeps(team=team, limit=5),
        "storage": selectors.storage_measured(team=team),
        "can_admin": ADMIN in access.scopes,
        "can_test": WRITE in access.scopes,
        "kinds": CONNECTION_KINDS,
        "kind_fields": {kind: spec["allowed"] for kind, spec in CONNECTION_FIELDS.items()},
    }
    return render(request, "data/overview.html", context)


@require_POST
@team_page(READ)
def secret_save(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    _require(access, ADMIN)
    name, value = request.POST.get("name", "").strip(), request.POST.get("value", "")
    description = request.POST.get("description", "").strip()
    secret = selectors.secret_for_name(team=access.team, name=name)
    if secret is None:
        run_service(
            request,
            lambda: services.secret_create(
                actor=page_actor(request), team=access.team, name=name, value=value, description=description
            ),
            success=f"Secret '{name}' saved. Its value will not be shown again.",
        )
    else:
        run_service(
            request,
            lambda: services.secret_update(
                actor=page_actor(request), secret=secret, value=value or None, description=description or None
            ),
            success=f"Secret '{name}' updated.",
        )
    return back_to(access, "data:overview")


@require_POST
@team_page(READ)
def secret_delete(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    secret = selectors.secret_for_name(team=access.team, name=name)
    return _delete(request, access, secret, lambda: services.secret_delete(actor=page_actor(request), secret=secret))


@require_POST
@team_page(READ)
def connection_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    _require(access, ADMIN)
    kind = request.POST.get("kind", "")
    allowed = CONNECTION_FIELDS.get(kind, {}).get("allowed", ())
    config = {key: request.POST.get(f"{kind}-{key}", "").strip() for key in allowed}
    name = request.POST.get("name", "").strip()
    run_service(
        request,
        lambda: services.connection_create(
            actor=page_actor(request),
            team=access.team,
            name=name,
            kind=kind,
            config=config,
            description=request.POST.get("description", "").strip(),
        ),
        success=f"Connection '{name}' created. Test it to check it works.",
    )
    return back_to(access, "data:overview")


@require_POST
@team_page(READ)
def connection_delete(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    connection = selectors.connection_for_name(team=access.team, name=name)
    return _delete(
        request,
        access,
        connection,
        lambda: services.connection_delete(actor=page_actor(request), connection=connection),
    )


@require_POST
@team_page(READ)
def connection_test(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    """htmx: the connection's row, with the test's result."""
    _require(access, WRITE)
    connection = selectors.connection_for_name(team=access.team, name=name)
    if connection is None:
        raise Http404("No such connection.")
    result = probe.test(connection)
    connection = services.connection_test_record(connection=connection, ok=result.ok, message=result.message)
    context = {"access": access, "connection": connection, "can_admin": ADMIN in access.scopes, "can_test": True}
    return render(request, "data/_connection_row.html", context)


@require_POST
@team_page(READ)
def retention_save(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    _require(access, ADMIN)
    try:
        keep = int(request.POST.get("keep_last_runs", "10"))
        days = int(request.POST.get("expire_after_days", "30"))
    except ValueError:
        keep = days = -1
    run_service(
        request,
        lambda: services.retention_policy_set(
            actor=page_actor(request),
            team=access.team,
            enabled=request.POST.get("enabled") == "on",
            keep_last_runs=keep,
            expire_after_days=days,
        ),
        success="Retention policy saved; the next sweep applies it.",
    )
    return back_to(access, "data:overview")


@require_POST
@team_page(READ)
def gc_run(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    _require(access, ADMIN)
    dry_run = request.POST.get("dry_run") == "1"
    try:
        sweep = gc.gc_sweep(team=access.team, dry_run=dry_run)
    except (ServiceError, OSError) as exc:
        messages.error(request, f"The sweep failed: {exc}")
        return back_to(access, "data:overview")
    verb = "would free" if dry_run else "freed"
    messages.success(
        request,
        f"{'Dry run' if dry_run else 'Sweep'}: {sweep.scanned} blobs scanned, {sweep.live} referenced; "
        f"{verb} {sweep.deleted} blobs ({sweep.freed_bytes} bytes).",
    )
    return back_to(access, "data:overview")


@team_page(READ)
def dataset_detail(request: HttpRequest, access: TeamAccess, dataset_id: int) -> HttpResponse:
    dataset = selectors.dataset_list(team=access.team).filter(pk=dataset_id).first()
    if dataset is None:
        raise Http404("No such data set.")
    versions = list(selectors.dataset_list(team=access.team, name=dataset.name)[:50])
    context = {
        "access": access,
        "dataset": dataset,
        "inputs": selectors.dataset_inputs(dataset=dataset),
        "versions": versions,
        "columns": (dataset.schema or {}).get("columns") or [],
    }
    return render(request, "data/dataset.html", context)
