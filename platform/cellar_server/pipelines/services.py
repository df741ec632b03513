"""Writes for pipelines: compile a notebook into a version, move the `production` alias, roll it back.

Every creation and every alias move is audited through the teams app. Versions are
content-addressed: the same spec gives the same version, however many requests race to
create it (a unique constraint, the pipeline row locked while numbering, and an
IntegrityError retry for the pipeline's own first creation).

Trust boundary (ARCHITECTURE.md): the web process only *parses* user code. The compiler is
static analysis (ast, pyflakes); nothing from the notebook is imported or executed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.environment import check_environment
from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.spec import Environment, PipelineSpec
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines import pools
from cellar_server.pipelines.errors import PipelineError
from cellar_server.pipelines.models import PROMOTE, ROLLBACK, Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

PROMOTE_SCOPE = "pipelines:promote"
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# Path segments the API uses beside pipeline names.
RESERVED_NAMES = {"compile", "new"}
MAX_WARNINGS = 200


@dataclass
class CompiledNotebook:
    spec: PipelineSpec
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VersionOutcome:
    version: PipelineVersion
    created: bool
    warnings: list[dict[str, Any]]
    production_move: ProductionMove | None = None


def pipeline_name_validate(name: str) -> str:
    name = (name or "").strip()
    if not PIPELINE_NAME.match(name):
        raise ServiceError(
            "invalid_pipeline_name",
            f"'{name[:100]}' is not a pipeline name: use 1 to 100 lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, like 'churn-model'.",
        )
    if name in RESERVED_NAMES:
        raise ServiceError("invalid_pipeline_name", f"'{name}' is reserved; choose another pipeline name.")
    return name


# --- compiling --------------------------------------------------------------------------------------------


def _compile_error(problems: list[Problem], *, code: str = "compile_error") -> PipelineError:
    if problems and all(p.code == "bad_notebook" for p in problems):
        code = "not_a_notebook"  # the upload is not a notebook at all: a stable code of its own
    first = str(problems[0]) if problems else "unknown problem"
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    lead = {
        "compile_error": "This notebook cannot become a pipeline",
        "missing_package": "The target pool cannot run this pipeline",
    }.get(code, "This is not a notebook")
    return PipelineError(code, f"{lead}: {first}{more}.", detail={"problems": [p.to_dict() for p in problems]})


def _first_cell(spec: PipelineSpec, step: str) -> int | None:
    source = spec.source.get(step)
    return source.cells[0] if source and source.cells else None


def _pools_used(spec: PipelineSpec) -> list[str]:
    seen: dict[str, None] = {}
    for step in spec.steps:
        seen.setdefault(step.resources.pool, None)
    return list(seen)


def environment_check(spec: PipelineSpec) -> tuple[list[Problem], list[Problem]]:
    """Errors (a package a pool lacks) and warnings (version differences) for every pool the steps use."""
    errors: list[Problem] = []
    warnings: dict[str, Problem] = {}  # message -> problem: one warning per difference, not per step
    for pool in _pools_used(spec):
        steps = [s for s in spec.steps if s.resources.pool == pool]
        pool_env = pools.pool_environment(pool, {m for s in steps for m in s.imports})
        for step in steps:
            report = check_environment({step.name: list(step.imports)}, spec.environment, pool, pool_env)
            cell = _first_cell(spec, step.name)
            errors += [Problem("missing_package", message, cell=cell, step=step.name) for message in report.errors]
            for message in report.warnings:
                warnings.setdefault(message, Problem("environment", message))
    return errors, list(warnings.values())


def _target_pool(spec: PipelineSpec) -> str:
    used = _pools_used(spec)
    return pools.DEFAULT_POOL if pools.DEFAULT_POOL in used or not used else used[0]


def pipeline_compile(
    *,
    notebook: dict[str, Any],
    cells: list[int] | None = None,
    environment: Environment | None = None,
    kernel_values: dict[str, Any] | None = None,
    notebook_name: str = "",
) -> CompiledNotebook:
    """Compile a notebook (a parsed .ipynb dict, never a path) against this platform's pools.

    Static analysis only: the notebook's code is parsed, never executed, in the web process.
    Without `environment` (a plain curl), the target pool's environment is the lock.
    Raises PipelineError `compile_error` or `missing_package` with every problem in `detail`.
    """
    if not isinstance(notebook, dict):  # a str would be read as a path on this server
        raise ServiceError("not_a_notebook", "Send the notebook as its JSON object (the .ipynb file's content).")
    try:
        result = compile_notebook(
            notebook,
            cells=cells,
            pools=pools.pool_offers(),
            environment=environment,
            kernel_values=kernel_values,
            notebook_name=notebook_name,
        )
    except CompileError as exc:
        raise _compile_error(exc.problems) from None
    spec = result.spec
    if environment is None:
        imports = {m for step in spec.steps for m in step.imports}
        spec.environment = pools.pool_environment(_target_pool(spec), imports)
    errors, env_warnings = environment_check(spec)
    if errors:
        raise _compile_error(errors, code="missing_package")
    warnings = [w.to_dict() for w in list(result.warnings) + env_warnings][:MAX_WARNINGS]
    return CompiledNotebook(spec=spec, warnings=warnings)


# --- versions ---------------------------------------------------------------------------------------------


def pipeline_version_create(
    *,
    team: Team,
    pipeline_name: str,
    notebook: dict[str, Any],
    cells: list[int] | None = None,
    environment: Environment | None = None,
    kernel_values: dict[str, Any] | None = None,
    notebook_name: str = "",
    description: str = "",
    actor: Actor,
    production: bool = False,
    scopes: Iterable[str],
) -> VersionOutcome:
    """Compile `notebook` and get or create the version with its hash; optionally make it production.

    Everything is checked before anything is written: a refused request leaves no pipeline,
    no version and no alias move behind.
    """
    name = pipeline_name_validate(pipeline_name)
    if production and PROMOTE_SCOPE not in set(scopes):
        raise ServiceError(
            "missing_scope",
            f"Making a version production needs the '{PROMOTE_SCOPE}' scope (team admins); "
            "promote without --production and ask an admin to move the alias.",
            status_code=403,
        )
    compiled = pipeline_compile(
        notebook=notebook,
        cells=cells,
        environment=environment,
        kernel_values=kernel_values,
        notebook_name=notebook_name,
    )
    return pipeline_version_save(
        team=team,
        pipeline_name=name,
        spec=compiled.spec,
        warnings=compiled.warnings,
        description=description,
        actor=actor,
        production=production,
    )


def _pipeline_get_or_create(*, team: Team, name: str, description: str, actor: Actor) -> Pipeline:
    pipeline = Pipeline.objects.filter(name=name).first()
    if pipeline is not None:
        return pipeline
    try:
        with transaction.atomic():  # a savepoint: a racing request may create it first
            pipeline = Pipeline.objects.create(
                team=team, name=name, description=description.strip()[:2000], created_by=actor.user
            )
    except IntegrityError:
        return Pipeline.objects.get(name=name)
    audit_record(
        team=team, actor=actor, verb="pipeline.create", target_type="pipeline", target_id=pipeline.pk, target_repr=name
    )
    return pipeline


@transaction.atomic
def pipeline_version_save(
    *,
    team: Team,
    pipeline_name: str,
    spec: PipelineSpec,
    warnings: list[dict[str, Any]] | None = None,
    description: str = "",
    actor: Actor,
    production: bool = False,
) -> VersionOutcome:
    """Get or create the version whose id is `spec.content_hash()` (the caller checked scopes)."""
    name = pipeline_name_validate(pipeline_name)
    digest = spec.content_hash()
    warnings = list(warnings or [])
    with team_scope(team.id):
        pipeline = _pipeline_get_or_create(team=team, name=name, description=description, actor=actor)
        # Numbering and the alias need the pipeline serialized: PostgreSQL takes a row lock here;
        # SQLite's IMMEDIATE transactions already let one writer in at a time.
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        version = PipelineVersion.objects.filter(pipeline=pipeline, hash=digest).first()
        created = False
        if version is None:
            number = (PipelineVersion.objects.filter(pipeline=pipeline).aggregate(n=Max("number"))["n"] or 0) + 1
            try:
                with transaction.atomic():
                    version = PipelineVersion.objects.create(
                        team=team,
                        pipeline=pipeline,
                        hash=digest,
                        number=number,
                        spec=spec.to_dict(),
                        step_count=len(spec.steps),
                        notebook=(spec.notebook or "")[:255],
                        warnings=warnings,
                        created_by=actor.user,
                    )
                created = True
            except IntegrityError:
                version = PipelineVersion.objects.get(pipeline=pipeline, hash=digest)
        if created:
            audit_record(
                team=team,
                actor=actor,
                verb="pipeline.version_create",
                target_type="pipeline_version",
                target_id=digest,
                target_repr=f"{name} v{version.number}",
                details={
                    "pipeline": name,
                    "number": version.number,
                    "hash": digest,
                    "steps": version.step_count,
                    "notebook": version.notebook,
                },
            )
        move = None
        if production:
            move = pipeline_production_move(team=team, pipeline=pipeline, version=version, actor=actor, kind=PROMOTE)
    version.pipeline = pipeline
    return VersionOutcome(version=version, created=created, warnings=warnings, production_move=move)


# --- the production alias ---------------------------------------------------------------------------------


def _version_label(version: PipelineVersion | None) -> dict[str, Any] | None:
    return None if version is None else {"number": version.number, "hash": version.hash}


@transaction.atomic
def pipeline_production_move(
    *, team: Team, pipeline: Pipeline, version: PipelineVersion, actor: Actor, kind: str = PROMOTE
) -> ProductionMove | None:
    """Point `production` at `version`; None when it already does (a repeated click moves nothing)."""
    if kind not in (PROMOTE, ROLLBACK):
        raise ServiceError("invalid_move", f"'{kind}' is not a kind of alias move; use promote or rollback.")
    if version.pipeline_id != pipeline.pk or version.team_id != team.pk:
        raise ServiceError("not_found", "That version does not belong to this pipeline.", status_code=404)
    with team_scope(team.id):
        locked = Pipeline.objects.select_related("production").select_for_update(of=("self",)).get(pk=pipeline.pk)
        previous = locked.production
        if previous is not None and previous.pk == version.pk:
            pipeline.production = version
            return None
        move = ProductionMove.objects.create(
            team=team,
            pipeline=locked,
            from_version=previous,
            to_version=version,
            kind=kind,
            actor=actor.user,
            actor_name=actor.name,
        )
        locked.production = version
        locked.save(update_fields=["production"])
    pipeline.production = version
    audit_record(
        team=team,
        actor=actor,
        verb=f"pipeline.production_{kind}",
        target_type="pipeline",
        target_id=pipeline.pk,
        target_repr=f"{pipeline.name} v{version.number}",
        details={"pipeline": pipeline.name, "from": _version_label(previous), "to": _version_label(version)},
    )
    return move


def rollback_target_id(moves: Iterable[ProductionMove]) -> int | None:
    """The version a rollback returns to, from the alias history in chronological order.

    The history is replayed as a stack: a promote pushes its version, a rollback pops back to
    its own. Rolling back again goes further back, never forth again to what was just undone.
    """
    stack: list[int] = []
    for move in moves:
        if move.kind == PROMOTE:
            stack.append(move.to_version_id)
        else:
            while stack and stack[-1] != move.to_version_id:
                stack.pop()
            if not stack:
                stack.append(move.to_version_id)
    return stack[-2] if len(stack) >= 2 else None


@transaction.atomic
def pipeline_production_rollback(*, team: Team, pipeline: Pipeline, actor: Actor) -> ProductionMove:
    """Move `production` back to where it pointed before its last promote."""
    with team_scope(team.id):
        locked = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        moves = ProductionMove.objects.filter(pipeline=locked).order_by("created_at", "id").only("kind", "to_version")
        target_id = rollback_target_id(moves)
        if target_id is None:
            raise ServiceError(
                "nothing_to_roll_back",
                f"Pipeline '{pipeline.name}' has no earlier production version to roll back to.",
                status_code=409,
            )
        target = PipelineVersion.objects.get(pk=target_id)
    move = pipeline_production_move(team=team, pipeline=pipeline, version=target, actor=actor, kind=ROLLBACK)
    if move is None:  # cannot happen: the target is never the current version
        raise ServiceError("nothing_to_roll_back", "Production already is the version before the last promote.")
    return move
