"""Request-level middleware: body size limit, structured access log, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from cellar_server.core.errors import json_error
from cellar_server.core.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("cellar.request")
# Cellar's own processes calling the control plane: agents' heartbeats, claims and results, the serve
# process's route polls and reports, worker status. Dozens a second on a quiet platform; logged at
# DEBUG when they succeed so that the log shows what people do.
MACHINE_PATHS = (
    "/api/v1/engine/",
    "/api/v1/serving/",
    "/api/v1/compute/workers/",
    "/api/v1/compute/pools/",
    "/api/v1/ab-tests/exposures/",
)


class BodySizeLimitMiddleware:
    """Refuse an oversized body before anything reads it: 413 with a JSON error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_artifact = "/mlflow-artifacts/" in request.path
        limit = settings.CELLAR_MAX_ARTIFACT_BYTES if is_artifact else settings.CELLAR_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error("invalid_content_length", "The Content-Length header is not a number.", 400)
        if length > limit:
            return json_error(
                "request_too_large",
                f"The request body is {length} bytes; this server accepts at most {limit}.",
                413,
            )
        return self.get_response(request)


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(route).observe(elapsed)
        if not request.path.startswith("/static/"):
            user = getattr(request, "user", None)
            machine = response.status_code < 400 and request.path.startswith(MACHINE_PATHS)
            logger.log(
                logging.DEBUG if machine else logging.INFO,
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user": user.get_username() if user is not None and user.is_authenticated else None,
                },
            )
        return response
