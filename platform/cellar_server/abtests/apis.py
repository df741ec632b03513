"""/api/v1/teams/<team>/ab-tests/… and the serve process's exposure outbox.

GET    ab-tests/                    abtests:read      list (?status=, ?deployment=)
POST   ab-tests/                    abtests:write     {deployment, name, variants, metrics, coverage?, seed?, shadow?,
                                                       alpha?, sequential_n_star?, duration_days?}
GET    ab-tests/<id>/               abtests:read
GET    ab-tests/<id>/results/       abtests:read      ?refresh=1 recomputes the aggregates first
POST   ab-tests/<id>/weights/       abtests:write     {weights} → a new phase
POST   ab-tests/<id>/coverage/      abtests:write     {coverage} → same phase
POST   ab-tests/<id>/stop/          abtests:write     {reason?}
POST   ab-tests/<id>/extend/        abtests:write     {days}
POST   ab-tests/<id>/promote/       abtests:write     {arm?, reason?} (reason required unless "ready")
POST   ab-tests/<id>/events         experiments:write {events: [{id, unit_id, name, value, at}]} (idempotent by id)
POST   /api/v1/ab-tests/exposures/  serve credential  {records: [{test_id, phase, unit_id, arm, at}]}
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.abtests import aggregates, analysis, ingest, selectors, services
from cellar_server.abtests.models import ABTest
from cellar_server.abtests.payloads import test_payload
from cellar_server.core.errors import error_body
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.teams.actors import actor_from_request

READ = "abtests:read"
WRITE = "abtests:write"
EVENTS = "experiments:write"


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", "Send a JSON object.")
    return request.data


def _error_response(exc: Exception) -> Response | None:
    if isinstance(exc, ingest.BatchError):
        return Response(error_body(exc.code, exc.message, {"errors": exc.errors}), status=exc.status_code)
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message), status=exc.status_code)
    return None


@extend_schema(tags=["ab-tests"], request=dict, responses={200: dict})
class ABTestApi(TeamScopedViewSet):
    model = ABTest
    scope_map = {"GET": READ, "POST": WRITE}
    action_scope_map = {"events": EVENTS}
    lookup_url_kwarg = "test_id"

    def handle_exception(self, exc: Exception) -> Response:
        return _error_response(exc) or super().handle_exception(exc)

    def _test(self) -> ABTest:
        test = selectors.abtest_get(team=self.team, test_id=self.kwargs["test_id"])
        if test is None:  # the same answer for another team's test
            raise ServiceError(
                "unknown_ab_test",
                f"Team '{self.team.slug}' has no A/B test {self.kwargs['test_id']}; list them at "
                f"/api/v1/teams/{self.team.slug}/ab-tests/.",
                status_code=404,
            )
        return test

    @extend_schema(operation_id="abtests_list")
    def list(self, request: Request, team_slug: str) -> Response:
        qs = selectors.abtest_list(
            team=self.team, status=request.query_params.get("status"), deployment=request.query_params.get("deployment")
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response([test_payload(t) for t in page])

    @extend_schema(operation_id="abtests_create")
    def create(self, request: Request, team_slug: str) -> Response:
        data = _body(request)
        allowed = {
            "deployment", "name", "description", "variants", "metrics", "coverage", "seed", "shadow", "alpha",
            "sequential_n_star", "duration_days",
        }  # fmt: skip
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ServiceError("unknown_field", f"Unknown field(s): {', '.join(unknown)}.")
        test = services.abtest_create(
            team=self.team,
            actor=actor_from_request(request),
            deployment_name=data.get("deployment", ""),
            name=data.get("name", ""),
            variants=data.get("variants"),
            metrics=data.get("metrics"),
            description=data.get("description", ""),
            **{
                k: data[k]
                for k in ("coverage", "seed", "shadow", "alpha", "sequential_n_star", "duration_days")
                if k in data
            },
        )
        return Response(test_payload(test), status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="abtests_retrieve")
    def retrieve(self, request: Request, team_slug: str, test_id: int) -> Response:
        return Response(test_payload(self._test()))

    @extend_schema(operation_id="abtests_results")
    def results(self, request: Request, team_slug: str, test_id: int) -> Response:
        test = self._test()
        if request.query_params.get("refresh") in ("1", "true") or test.refreshed_at is None:
            aggregates.aggregates_refresh(test=test)
            test.refresh_from_db(fields=["refreshed_at"])
        try:
            phase = int(request.query_params.get("phase") or test.phase)
        except ValueError:
            raise ServiceError("invalid_phase", "'phase' must be a phase number.") from None
        if not 1 <= phase <= test.phase:
            raise ServiceError("invalid_phase", f"This test has phases 1 to {test.phase}.")
        if phase != test.phase:
            aggregates.aggregates_refresh(test=test, phase=phase)
        return Response(analysis.analyse(test=test, phase=phase))

    def _act(self, request: Request, fn, **kwargs) -> Response:
        test = fn(test=self._test(), actor=actor_from_request(request), **kwargs)
        return Response(test_payload(selectors.abtest_get(team=self.team, test_id=test.pk)))

    @extend_schema(operation_id="abtests_weights")
    def weights(self, request: Request, team_slug: str, test_id: int) -> Response:
        return self._act(request, services.abtest_set_weights, weights=_body(request).get("weights"))

    @extend_schema(operation_id="abtests_coverage")
    def coverage(self, request: Request, team_slug: str, test_id: int) -> Response:
        return self._act(request, services.abtest_set_coverage, coverage=_body(request).get("coverage"))

    @extend_schema(operation_id="abtests_stop")
    def stop(self, request: Request, team_slug: str, test_id: int) -> Response:
        return self._act(request, services.abtest_stop, reason=_body(request).get("reason", ""))

    @extend_schema(operation_id="abtests_extend")
    def extend(self, request: Request, team_slug: str, test_id: int) -> Response:
        return self._act(request, services.abtest_extend, days=_body(request).get("days"))

    @extend_schema(operation_id="abtests_promote")
    def promote(self, request: Request, team_slug: str, test_id: int) -> Response:
        data = _body(request)
        test = self._test()
        aggregates.aggregates_refresh(test=test)
        return self._act(request, services.abtest_promote, arm_key=data.get("arm"), reason=data.get("reason", ""))

    @extend_schema(operation_id="abtests_events")
    def events(self, request: Request, team_slug: str, test_id: int) -> Response:
        counts = ingest.events_ingest(test=self._test(), events=_body(request).get("events"))
        return Response(counts, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["serving"], request=dict, responses={200: dict})
class ExposuresApi(APIView):
    """Serve's outbox of first exposures (the serve credential; no team in the URL: the test says)."""

    def get_authenticators(self):
        from cellar_server.serving.credentials import ServeCredentialAuthentication

        return [ServeCredentialAuthentication()]

    def get_permissions(self):
        from cellar_server.serving.credentials import IsServe

        return [IsServe()]

    def handle_exception(self, exc: Exception) -> Response:
        return _error_response(exc) or super().handle_exception(exc)

    def post(self, request: Request) -> Response:
        return Response(ingest.exposures_ingest(records=_body(request).get("records")))
