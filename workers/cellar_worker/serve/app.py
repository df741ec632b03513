"""The serve ASGI app: POST /serve/<team>/<deployment>/predict, GET /healthz, GET /readyz.

A plain ASGI callable (no framework) under uvicorn with uvloop and httptools: the request path
is JSON parse (orjson) → key check → signature validation → route → predict → JSON, with the
counters and sampled inputs kept in memory for the outbox. Everything a model raises becomes a
JSON error for that request; the process keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from cellar.models import SignatureError
from cellar_worker.serve import abtest
from cellar_worker.serve.config import ServeConfig
from cellar_worker.serve.loader import Predictor
from cellar_worker.serve.outbox import Outbox
from cellar_worker.serve.routing import DeploymentTable
from cellar_worker.serve.stats import PredictionStats
from cellar_worker.serve.sync import ServeState, Syncer

logger = logging.getLogger("cellar.serve")

Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON = [(b"content-type", b"application/json")]
_EXTRAS = ("unit_id",)


def _error(status: int, code: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message, **extra}}


class ServeApp:
    def __init__(self, config: ServeConfig | None = None, *, state: ServeState | None = None):
        self.config = config or ServeConfig()
        self.state = state or ServeState()
        self.outbox = Outbox(
            self.config.url("/api/v1/serving/predictions/"),
            self.config.token,
            flush_seconds=self.config.flush_seconds,
            max_batch=self.config.flush_max,
            capacity=self.config.outbox_capacity,
        )
        self.stats = PredictionStats(self.outbox)
        self.syncer = Syncer(self.config, self.state)

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                # Ready to answer once the first poll has loaded what the manifests route to.
                await asyncio.get_running_loop().run_in_executor(None, self.syncer.first_sync.wait, 30)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        self.syncer.start()
        self.outbox.start()
        if hasattr(abtest, "configure"):
            abtest.configure(self.config)

    def stop(self) -> None:
        self.syncer.stop()
        self.outbox.stop(flush=True)
        if hasattr(abtest, "close"):
            abtest.close()

    async def _http(self, scope: dict[str, Any], receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        after: list[Callable[[], None]] = []
        if path.startswith("/serve/") and path.endswith("/predict"):
            parts = path.split("/")
            if len(parts) != 5:
                status, body = _error(404, "not_found", "Predictions are at /serve/<team>/<deployment>/predict.")
            elif method != "POST":
                status, body = _error(405, "method_not_allowed", "POST the rows to predict as JSON.")
            else:
                raw = await _read_body(receive, self.config.max_body)
                if raw is None:
                    status, body = _error(413, "request_too_large", "The request body is larger than serve accepts.")
                else:
                    status, body = self.predict(parts[2], parts[3], _bearer(scope["headers"]), raw, after)
        elif path == "/healthz":
            status, body = 200, {"status": "ok"}
        elif path == "/readyz":
            status, body = self.readiness()
        else:
            status, body = _error(404, "not_found", "Not found. Predictions are at /serve/<team>/<deployment>/predict.")
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON, (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})
        for task in after:  # shadow predictions: after the caller has its answer
            asyncio.get_running_loop().call_soon(task)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        body = {
            "synced": self.state.synced,
            "deployments": {f"{t}/{n}": list(table.routed) for (t, n), table in self.state.tables.items()},
            "unavailable": {f"{t}/{n}": reason for (t, n), reason in self.state.unavailable.items()},
            "outbox_pending": self.outbox.pending,
        }
        return (200 if self.state.synced else 503), body

    # --- predict -------------------------------------------------------------------------

    def predict(
        self, team: str, name: str, key: str | None, raw: bytes, after: list[Callable[[], None]] | None = None
    ) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        table = self.state.tables.get((team, name))
        if table is None:
            reason = self.state.unavailable.get((team, name))
            if reason is not None:
                return _error(503, "deployment_unavailable", f"No model version of '{name}' could be loaded: {reason}")
            return _error(404, "deployment_not_found", f"Team '{team}' has no deployment named '{name}'.")
        if not key:
            return _error(
                401,
                "missing_key",
                "Send 'Authorization: Bearer <deployment key>' (keys are minted on the deployment's page).",
            )
        if not table.authorized(key):
            return _error(403, "invalid_key", f"This key is not a live key of deployment '{name}'.")
        predictor = table.choose()
        try:
            payload = orjson.loads(raw)
            validated = predictor.validate(payload, extras=_EXTRAS)
        except orjson.JSONDecodeError as exc:
            self._count(table, predictor.version_id, started, 0, error=True)
            return _error(400, "malformed_json", f"The request body is not valid JSON: {exc}")
        except SignatureError as exc:
            self._count(table, predictor.version_id, started, 0, error=True)
            return _error(422, "signature_mismatch", exc.message, fields=exc.fields, detail=exc.problems)
        n_rows = validated.n_rows
        if n_rows == 0:
            return 200, {"deployment": name, "predictions": [], "versions": []}
        block = table.extensions.get("abtest")
        unit_ids = validated.extras.get("unit_id") if block is not None else None
        try:
            if unit_ids is not None and any(u is not None for u in unit_ids):
                body = self._predict_assigned(table, predictor, block, validated.columns, unit_ids, n_rows, after)
            else:
                predictions = predictor.predict_columns(validated.columns, n_rows)
                body = {"deployment": name, "predictions": predictions, "versions": [predictor.version_id] * n_rows}
                self.stats.sample(table.id, predictor.version_id, table.sample_rate, validated.columns, n_rows)
        except Exception as exc:  # the model raised: this request fails, serve does not
            self._count(table, predictor.version_id, started, n_rows, error=True)
            logger.warning("model version %s raised: %r", predictor.version_id, exc)
            return _error(
                500, "prediction_failed", f"Model version {predictor.version_id} raised {type(exc).__name__}: {exc}"
            )
        versions = body["versions"]
        if len(set(versions)) == 1:
            self._count(table, versions[0] if versions else predictor.version_id, started, n_rows, error=False)
        else:
            for version_id in set(versions):
                self._count(table, version_id, started, versions.count(version_id), error=False)
        return 200, body

    def _predict_assigned(
        self,
        table: DeploymentTable,
        default: Predictor,
        block: Any,
        columns: dict[str, list],
        unit_ids: list,
        n_rows: int,
        after: list[Callable[[], None]] | None,
    ) -> dict[str, Any]:
        """Rows with a unit_id go to the arm the A/B test assigns; the others to normal routing."""
        groups: dict[str, list[int]] = {}
        variants: list[str | None] = [None] * n_rows
        shadows: dict[str, list[int]] = {}
        for index, unit_id in enumerate(unit_ids):
            assigned = _assign(block, unit_id) if unit_id is not None else None
            version_id = default.version_id
            if assigned is not None:
                arm_version, variant_key, _enrolled, shadow_ids = assigned
                if str(arm_version) in table.predictors:
                    version_id = str(arm_version)
                variants[index] = variant_key
                for shadow_id in shadow_ids or ():
                    shadows.setdefault(str(shadow_id), []).append(index)
            groups.setdefault(version_id, []).append(index)
        predictions: list[Any] = [None] * n_rows
        versions: list[str] = [default.version_id] * n_rows
        for version_id, indexes in groups.items():
            predictor = table.predictors[version_id]
            subset = columns if len(indexes) == n_rows else {k: [v[i] for i in indexes] for k, v in columns.items()}
            for i, value in zip(indexes, predictor.predict_columns(subset, len(indexes)), strict=True):
                predictions[i] = value
                versions[i] = version_id
            self.stats.sample(table.id, version_id, table.sample_rate, subset, len(indexes))
        if shadows and after is not None:
            for shadow_id, indexes in shadows.items():
                after.append(lambda s=shadow_id, ix=indexes: self._shadow(table, s, columns, ix))
        return {"deployment": table.name, "predictions": predictions, "versions": versions, "variants": variants}

    def _shadow(self, table: DeploymentTable, version_id: str, columns: dict[str, list], indexes: list[int]) -> None:
        """A shadow version predicts the same rows after the response; its answer only feeds stats."""
        predictor = table.predictors.get(version_id)
        if predictor is None:
            return
        started = time.perf_counter()
        subset = {k: [v[i] for i in indexes] for k, v in columns.items()}
        try:
            outputs = predictor.predict_columns(subset, len(indexes))
            error = False
        except Exception as exc:
            outputs, error = None, True
            logger.warning("shadow version %s raised: %r", version_id, exc)
        self._count(table, version_id, started, len(indexes), error=error)
        if hasattr(abtest, "record_shadow") and outputs is not None:
            abtest.record_shadow(table.extensions.get("abtest"), version_id, indexes, outputs)

    def _count(self, table: DeploymentTable, version_id: str, started: float, rows: int, *, error: bool) -> None:
        self.stats.record(table.id, version_id, (time.perf_counter() - started) * 1000.0, rows, error)

    def predict_with(self, version_id: str, rows: Any) -> list:
        """For extensions: predict with one loaded version by id."""
        return self.state.predict_with(version_id, rows)


def _assign(block: Any, unit_id: Any) -> tuple | None:
    """The A/B assignment, or None (normal routing) when the extension fails: a bug there must
    not fail predictions."""
    try:
        return abtest.assign(block, unit_id)
    except Exception:
        logger.exception("A/B assignment failed; the row takes normal routing")
        return None


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app() -> ServeApp:
    """uvicorn factory (`cellar_worker.serve.app:create_app`)."""
    return ServeApp()
