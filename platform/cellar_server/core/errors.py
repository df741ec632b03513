"""One error shape for the whole API: {"error": {"code", "message", "detail"}}.

Codes are stable identifiers clients may branch on; messages are for people.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from cellar_server.core.exceptions import ServiceError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return {"error": body}


_DEFAULT_CODES = {
    exceptions.ParseError: ("malformed_json", "The request body is not valid JSON: {detail}"),
    exceptions.NotAuthenticated: (
        "not_authenticated",
        "Sign in, or send 'Authorization: Bearer <token>' with an API token.",
    ),
    exceptions.AuthenticationFailed: ("authentication_failed", "{detail}"),
    exceptions.PermissionDenied: ("permission_denied", "{detail}"),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", "{detail}"),
    exceptions.UnsupportedMediaType: (
        "unsupported_media_type",
        "{detail} Send JSON with 'Content-Type: application/json'.",
    ),
    exceptions.Throttled: ("throttled", "{detail}"),
    exceptions.NotAcceptable: ("not_acceptable", "{detail}"),
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is larger than this server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(
            "invalid", "Some fields are invalid; see 'detail' for each field.", _plain(exc.detail)
        )
        return response
    for exc_type, (code, template) in _DEFAULT_CODES.items():
        if isinstance(exc, exc_type):
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            custom_code = getattr(exc, "cellar_code", None)
            response.data = error_body(custom_code or code, template.format(detail=detail))
            return response
    response.data = error_body("error", str(exc.detail))
    return response


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def json_error(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)
