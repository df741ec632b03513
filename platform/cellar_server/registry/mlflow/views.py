"""/t/<team>/mlflow/(ajax-)api/2.0/mlflow/{registered-models,model-versions}/… : MLflow's registry API."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from cellar_server.registry.errors import RegistryError
from cellar_server.registry.mlflow.handlers import ROUTES
from cellar_server.tracking.errors import ENDPOINT_NOT_FOUND, INTERNAL_ERROR, PERMISSION_DENIED, TrackingError
from cellar_server.tracking.mlflow.auth import authenticate
from cellar_server.tracking.mlflow.protocol import Fields, error_response, json_response

logger = logging.getLogger(__name__)
_TABLE = {(method, path): (handler, scope) for method, path, handler, scope in ROUTES}
HTTP_STATUS = {"RESOURCE_CONFLICT": 409}


@csrf_exempt
def api(request: HttpRequest, team_slug: str, endpoint: str) -> HttpResponse:
    try:
        route = _TABLE.get((request.method, endpoint.rstrip("/")))
        if route is None:
            raise TrackingError(ENDPOINT_NOT_FOUND, f"No MLflow endpoint {request.method} {endpoint}.")
        handler, scope = route
        caller = authenticate(request, team_slug)
        if caller.run_uuid is not None:
            raise TrackingError(PERMISSION_DENIED, "A pipeline step registers models with cellar.register_model.")
        caller.require(scope)
        with transaction.atomic():
            return json_response(handler(caller, Fields(request)))
    except TrackingError as exc:
        return error_response(exc)
    except RegistryError as exc:
        return json_response(
            {"error_code": exc.mlflow_code, "message": exc.message},
            status=HTTP_STATUS.get(exc.mlflow_code, TrackingError(exc.mlflow_code, "").status),
        )
    except Exception:
        logger.exception("mlflow registry api error", extra={"path": request.path})
        return error_response(TrackingError(INTERNAL_ERROR, "Internal error; it has been logged."))
