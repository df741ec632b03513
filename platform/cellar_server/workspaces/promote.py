"""What the notebook's "Promote to production" button asks Cellar: a preview, then one-click promote.

The preview is a dry run (nothing written): the steps and their inferred edges, parameters,
resources, the compiler's problems on their cells, the target pipeline and what changed against
its production version, and whether this caller may move `production` (else who can).
Promote creates (or finds) the version, moves `production` when asked and allowed, and starts a
run when asked: the three writes a person would otherwise make by hand, in one request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines import diff, payloads
from cellar_server.pipelines import selectors as pipeline_selectors
from cellar_server.pipelines import services as pipeline_services
from cellar_server.pipelines.engine import runs as engine_runs
from cellar_server.pipelines.errors import PipelineError
from cellar_server.teams import selectors as team_selectors
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.roles import Role, role_at_least

PROMOTE_SCOPE, WRITE_SCOPE, RUN_SCOPE = "pipelines:promote", "pipelines:write", "pipelines:run"


def promoters(*, team: Team) -> list[str]:
    """Who can move `production` in this team (admins and owners), for "ask …" messages."""
    return [
        m.user.get_username()
        for m in team_selectors.membership_list(team=team)
        if role_at_least(m.role, Role.ADMIN) and m.user.is_active
    ]


def promote_preview(
    *,
    team: Team,
    notebook: dict[str, Any],
    cells: list[int] | None,
    pipeline_name: str,
    notebook_name: str,
    scopes: Iterable[str],
) -> dict[str, Any]:
    scopes = set(scopes)
    try:
        compiled = pipeline_services.pipeline_compile(notebook=notebook, cells=cells, notebook_name=notebook_name)
        result = payloads.compile_result(compiled.spec, compiled.warnings, [])
        new_spec = compiled.spec.to_dict()
    except PipelineError as exc:
        if not isinstance(exc.detail, dict):
            raise
        result = payloads.compile_result(None, [], exc.detail["problems"])
        new_spec = None
    name = (pipeline_name or "").strip()
    pipeline = pipeline_selectors.pipeline_for_name(name=name) if name else None
    production = pipeline.production if pipeline is not None else None
    target: dict[str, Any] = {
        "name": name,
        "exists": pipeline is not None,
        "production": payloads.version_ref(production),
    }
    changes = None
    if production is not None and new_spec is not None:
        changes = diff.version_diff(production.spec, new_spec, labels=(f"v{production.number}", "this notebook"))
        changes["same_as_production"] = production.hash == new_spec["hash"]
    return {
        **result,
        "target": target,
        "diff": changes,
        "existing_pipelines": [p.name for p in pipeline_selectors.pipeline_list()[:200]],
        "can_save": WRITE_SCOPE in scopes,
        "can_promote": PROMOTE_SCOPE in scopes,
        "can_run": RUN_SCOPE in scopes,
        "promoters": promoters(team=team),
    }


@dataclass(frozen=True)
class PromoteOutcome:
    version: Any
    created: bool
    moved: bool
    run: Any | None
    warnings: list[dict[str, Any]]


def promote(
    *,
    team: Team,
    actor: Actor,
    scopes: Iterable[str],
    notebook: dict[str, Any],
    cells: list[int] | None,
    pipeline_name: str,
    notebook_name: str,
    production: bool,
    run_now: bool,
    parameters: dict[str, Any] | None = None,
) -> PromoteOutcome:
    scopes = set(scopes)
    if run_now and RUN_SCOPE not in scopes:
        raise ServiceError(
            "missing_scope", f"Running a pipeline needs the '{RUN_SCOPE}' scope (editors).", status_code=403
        )
    outcome = pipeline_services.pipeline_version_create(
        team=team,
        pipeline_name=pipeline_name,
        notebook=notebook,
        cells=cells,
        notebook_name=notebook_name,
        actor=actor,
        production=production,
        scopes=scopes,
    )
    version = outcome.version
    run = None
    if run_now:
        run = engine_runs.run_create(
            team=team, pipeline=version.pipeline, version=version, parameters=parameters, actor=actor, trigger="manual"
        )
    moved = outcome.production_move is not None
    return PromoteOutcome(version=version, created=outcome.created, moved=moved, run=run, warnings=outcome.warnings)
