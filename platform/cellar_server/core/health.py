"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from cellar_server.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=2)


def _check_artifacts() -> None:
    from cellar.artifacts import store_from_url

    store_from_url(settings.ARTIFACT_STORE_URL).check()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "artifact_store": _check_artifacts,
}


def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # a probe reports every failure, whatever its type
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        else:
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}
    ready = all(r["ok"] for r in results.values())
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": results}, status=200 if ready else 503)
