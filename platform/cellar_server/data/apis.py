"""/api/v1/teams/<team>/…: secrets, connections, data sets, retention and the garbage collector.

GET    secrets/                       names, descriptions, who/when updated (never values)
POST   secrets/                       admin: {name, value, description}
PATCH  secrets/<id>/                  admin: {value?, description?}
DELETE secrets/<id>/                  admin
GET    secrets/<name>/value/          {name, value}: a step that declared it, or editor+
GET    connections/  POST (admin)     connections (config names secrets, holds no values)
PATCH/DELETE connections/<id>/        admin
POST   connections/<id>/test/         editor+: try it; {ok, message} (secrets scrubbed)
GET    connections/<name>/resolve/    {name, kind, config with secret values}: like value/
GET    datasets/                      data set versions (?name=) with run counts
GET    datasets/<id>/                 one version and the runs that read it
POST   dataset-inputs/                {run_id?, context?, dataset: {...}}: record a read
GET    dataset-snapshots/<sha256>/    a snapshot's bytes (a data set of this team names it)
GET/PUT retention/                    the team's policy (PUT: admin)
POST   gc/                            admin: {dry_run}: sweep now, answer the report
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.data import access, datasets, gc, probe, selectors, services
from cellar_server.data.models import Connection, Dataset, Secret
from cellar_server.teams.actors import actor_from_request
from cellar_server.teams.authentication import BearerTokenAuthentication
from cellar_server.teams.models import Team
from cellar_server.teams.selectors import team_access, team_access_for_token
from cellar_server.teams.services import audit_record

READ, WRITE, ADMIN = "data:read", "data:write", "team:write"


def _object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", "Send a JSON object.")
    return request.data


def secret_body(secret: Secret) -> dict[str, Any]:
    return {
        "id": secret.pk,
        "name": secret.name,
        "description": secret.description,
        "created_at": secret.created_at.isoformat(),
        "updated_at": secret.updated_at.isoformat(),
        "updated_by": secret.updated_by,
    }


def connection_body(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.pk,
        "name": connection.name,
        "kind": connection.kind,
        "description": connection.description,
        "config": connection.config,
        "updated_at": connection.updated_at.isoformat(),
        "updated_by": connection.updated_by,
        "last_test": None
        if connection.last_test_at is None
        else {
            "ok": connection.last_test_ok,
            "at": connection.last_test_at.isoformat(),
            "message": connection.last_test_message,
        },
    }


class SecretViewSet(TeamScopedViewSet):
    model = Secret
    scope_map = {"GET": READ, "POST": ADMIN, "PATCH": ADMIN, "DELETE": ADMIN}

    def safely_get_queryset(self, queryset):
        return queryset.defer("ciphertext").order_by("name")

    @extend_schema(summary="Secrets by name (values are never returned)", responses={200: dict})
    def list(self, request: Request, team_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([secret_body(s) for s in page])

    @extend_schema(summary="Create a secret (admin)", request=dict, responses={201: dict})
    def create(self, request: Request, team_slug: str) -> Response:
        data = _object(request)
        secret = services.secret_create(
            actor=actor_from_request(request),
            team=self.team,
            name=data.get("name"),
            value=data.get("value"),
            description=data.get("description") or "",
        )
        return Response(secret_body(secret), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a secret's value or description (admin)", request=dict, responses={200: dict})
    def partial_update(self, request: Request, team_slug: str, pk: str) -> Response:
        data = _object(request)
        secret = services.secret_update(
            actor=actor_from_request(request),
            secret=self.get_object(),
            value=data.get("value"),
            description=data.get("description"),
        )
        return Response(secret_body(secret))

    @extend_schema(summary="Delete a secret (admin)", responses={204: None})
    def destroy(self, request: Request, team_slug: str, pk: str) -> Response:
        services.secret_delete(actor=actor_from_request(request), secret=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionViewSet(TeamScopedViewSet):
    model = Connection
    scope_map = {"GET": READ, "POST": ADMIN, "PATCH": ADMIN, "DELETE": ADMIN}
    action_scope_map = {"test": WRITE}

    @extend_schema(summary="Connections", responses={200: dict}, operation_id="data_connections_list")
    def list(self, request: Request, team_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset().order_by("name"))
        return self.get_paginated_response([connection_body(c) for c in page])

    @extend_schema(summary="One connection", responses={200: dict})
    def retrieve(self, request: Request, team_slug: str, pk: str) -> Response:
        return Response(connection_body(self.get_object()))

    @extend_schema(summary="Create a connection (admin)", request=dict, responses={201: dict})
    def create(self, request: Request, team_slug: str) -> Response:
        data = _object(request)
        connection = services.connection_create(
            actor=actor_from_request(request),
            team=self.team,
            name=data.get("name"),
            kind=data.get("kind"),
            config=data.get("config") or {},
            description=data.get("description") or "",
        )
        return Response(connection_body(connection), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a connection (admin)", request=dict, responses={200: dict})
    def partial_update(self, request: Request, team_slug: str, pk: str) -> Response:
        data = _object(request)
        connection = services.connection_update(
            actor=actor_from_request(request),
            connection=self.get_object(),
            config=data.get("config"),
            description=data.get("description"),
        )
        return Response(connection_body(connection))

    @extend_schema(summary="Delete a connection (admin)", responses={204: None})
    def destroy(self, request: Request, team_slug: str, pk: str) -> Response:
        services.connection_delete(actor=actor_from_request(request), connection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Try the connection; the driver's error, secrets scrubbed", request=None, responses={200: dict}
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, team_slug: str, pk: str) -> Response:
        connection = self.get_object()
        result = probe.test(connection)
        services.connection_test_record(connection=connection, ok=result.ok, message=result.message)
        return Response({"ok": result.ok, "message": result.message})


class DatasetViewSet(TeamScopedViewSet):
    model = Dataset
    scope_map = {"GET": READ}

    @extend_schema(
        summary="Data set versions (?name= for one data set)", responses={200: dict}, operation_id="data_datasets_list"
    )
    def list(self, request: Request, team_slug: str) -> Response:
        rows = selectors.dataset_list(team=self.team, name=request.query_params.get("name") or None)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([{**selectors.dataset_body(d), "run_count": d.run_count} for d in page])

    @extend_schema(summary="One data set version and the runs that read it", responses={200: dict})
    def retrieve(self, request: Request, team_slug: str, pk: str) -> Response:
        dataset = self.get_object()
        runs = [
            {
                "run_id": i.run.run_uuid,
                "run_name": i.run.name,
                "experiment_id": str(i.run.experiment.number),
                "context": i.context,
            }
            for i in selectors.dataset_inputs(dataset=dataset)
        ]
        return Response({**selectors.dataset_body(dataset), "runs": runs})


# --- endpoints a running step calls with its task token ----------------------------------------


class _StepOrMemberApi(APIView):
    """Takes a step's task token, an API token or a session; resolves the team from the URL."""

    authentication_classes = [access.TaskTokenAuthentication, BearerTokenAuthentication, SessionAuthentication]
    permission_classes: list = []  # caller() decides: a step, or a member holding the scope

    def caller(self, request: Request, team_slug: str, scope: str) -> tuple[Team, access.StepReader | None]:
        """(team, step) for a step; (team, None) for a person holding `scope`. 404 otherwise."""
        auth = request.auth
        if isinstance(auth, access.StepReader):
            team = Team.objects.filter(pk=auth.team_id, slug=team_slug).first()
            if team is None:
                raise exceptions.NotFound()
            return team, auth
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        token = auth if hasattr(auth, "scopes") else None
        found = (
            team_access_for_token(token=token, slug=team_slug)
            if token
            else team_access(user=request.user, slug=team_slug)
        )
        if found is None:
            raise exceptions.NotFound()
        scopes = found.scopes & frozenset(token.scopes) if token else found.scopes
        if token is not None and token.team_id != found.team.id:
            raise exceptions.NotFound()
        if scope not in scopes:
            if scope == access.READ_VALUES:
                raise access.ViewerCannotRead()
            raise exceptions.PermissionDenied(f"This needs the '{scope}' scope.")
        return found.team, None


class SecretValueApi(_StepOrMemberApi):
    @extend_schema(summary="A secret's value: for a step that declared it, or editor and up", responses={200: dict})
    def get(self, request: Request, team_slug: str, name: str) -> Response:
        team, step = self.caller(request, team_slug, access.READ_VALUES)
        secret = selectors.secret_for_name(team=team, name=name)
        if step is not None:
            with team_scope(team.id):
                via = {c.name for c in Connection.objects.all() if name in services.connection_secret_names(c)}
            if not access.step_may_read(step, name=name, via_connections=via):
                raise access.NotDeclared(name)
        if secret is None:
            raise exceptions.NotFound(f"No secret named '{name}' in this team.")
        if step is None:
            audit_record(
                team=team,
                actor=actor_from_request(request),
                verb="secret.read",
                target_type="secret",
                target_id=secret.pk,
                target_repr=secret.name,
            )
        return Response({"name": secret.name, "value": services.secret_value(secret=secret)})


class ConnectionResolveApi(_StepOrMemberApi):
    @extend_schema(summary="A connection with its secret values, for cellar.connect", responses={200: dict})
    def get(self, request: Request, team_slug: str, name: str) -> Response:
        team, step = self.caller(request, team_slug, access.READ_VALUES)
        connection = selectors.connection_for_name(team=team, name=name)
        if step is not None and name not in step.declared:
            names = services.connection_secret_names(connection) if connection else set()
            if not names or not names <= step.declared:
                raise access.NotDeclared(name)
        if connection is None:
            raise exceptions.NotFound(f"No connection named '{name}' in this team.")
        return Response(probe.resolve(connection))


class DatasetInputApi(_StepOrMemberApi):
    @extend_schema(summary="Record that a run read a data set version", request=dict, responses={201: dict})
    def post(self, request: Request, team_slug: str) -> Response:
        team, step = self.caller(request, team_slug, "experiments:write")
        data = _object(request)
        run_id = data.get("run_id") or None
        if step is not None and run_id not in (None, step.tracking_run):
            raise exceptions.NotFound(f"Run '{run_id}' not found.")
        run = None
        if run_id:
            from cellar_server.tracking.models import Run

            with team_scope(team.id):
                run = Run.objects.filter(run_uuid=str(run_id)).first()
            if run is None:
                raise exceptions.NotFound(f"Run '{run_id}' not found.")
        dataset = datasets.dataset_record(
            team=team, data=data.get("dataset"), run=run, context=data.get("context") or ""
        )
        return Response(selectors.dataset_body(dataset, data.get("context") or ""), status=status.HTTP_201_CREATED)


class DatasetSnapshotApi(_StepOrMemberApi):
    @extend_schema(summary="A data set snapshot's bytes", responses={200: bytes})
    def get(self, request: Request, team_slug: str, sha256: str):
        team, _ = self.caller(request, team_slug, READ)
        with team_scope(team.id):
            known = Dataset.objects.filter(snapshot=sha256).exists()
        if not known:
            raise exceptions.NotFound(f"No data set snapshot {sha256} in this team.")
        stream = gc.artifact_store().open_blob(team.slug, sha256)
        return StreamingHttpResponse(iter(lambda: stream.read(1 << 20), b""), content_type="application/octet-stream")


# --- retention and the garbage collector -----------------------------------------------------------


class RetentionViewSet(TeamScopedViewSet):
    scope_map = {"GET": READ, "PUT": ADMIN}

    @extend_schema(summary="The team's retention policy", responses={200: dict})
    def retrieve(self, request: Request, team_slug: str) -> Response:
        return Response(retention_body(selectors.retention_policy(team=self.team)))

    @extend_schema(summary="Set the retention policy (admin)", request=dict, responses={200: dict})
    def update(self, request: Request, team_slug: str) -> Response:
        data = _object(request)
        policy = services.retention_policy_set(
            actor=actor_from_request(request),
            team=self.team,
            enabled=data.get("enabled", False),
            keep_last_runs=data.get("keep_last_runs", 10),
            expire_after_days=data.get("expire_after_days", 30),
        )
        return Response(retention_body(policy))


def retention_body(policy) -> dict[str, Any]:
    if policy is None:
        return {"enabled": False, "keep_last_runs": 10, "expire_after_days": 30, "updated_at": None, "updated_by": ""}
    return {
        "enabled": policy.enabled,
        "keep_last_runs": policy.keep_last_runs,
        "expire_after_days": policy.expire_after_days,
        "updated_at": policy.updated_at.isoformat(),
        "updated_by": policy.updated_by,
    }


def sweep_body(sweep) -> dict[str, Any]:
    return {
        "id": sweep.pk,
        "dry_run": sweep.dry_run,
        "started_at": sweep.started_at.isoformat(),
        "finished_at": sweep.finished_at.isoformat() if sweep.finished_at else None,
        "scanned": sweep.scanned,
        "scanned_bytes": sweep.scanned_bytes,
        "live": sweep.live,
        "kept_recent": sweep.kept_recent,
        "deleted": sweep.deleted,
        "freed_bytes": sweep.freed_bytes,
        "sample": sweep.sample,
        "error": sweep.error or None,
    }


class GcViewSet(TeamScopedViewSet):
    scope_map = {"GET": READ, "POST": ADMIN}

    @extend_schema(summary="Recent sweeps", responses={200: dict})
    def list(self, request: Request, team_slug: str) -> Response:
        rows = [sweep_body(s) for s in selectors.gc_sweeps(team=self.team)]
        return Response({"count": len(rows), "next": None, "previous": None, "results": rows})

    @extend_schema(summary="Sweep now (admin); dry_run reports what it would free", request=dict, responses={200: dict})
    def create(self, request: Request, team_slug: str) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        dry_run = data.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ServiceError("invalid_body", "'dry_run' is true or false.")
        sweep = gc.gc_sweep(team=self.team, dry_run=dry_run)
        audit_record(
            team=self.team,
            actor=actor_from_request(request),
            verb="gc.dry_run" if dry_run else "gc.sweep",
            target_type="storage",
            target_id=sweep.pk,
            target_repr=self.team.slug,
            details={"deleted": sweep.deleted, "freed_bytes": sweep.freed_bytes},
        )
        return Response(sweep_body(sweep))
