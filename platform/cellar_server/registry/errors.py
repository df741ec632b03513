"""Registry errors: one stable code each, with the MLflow error code the MLflow API answers."""

from __future__ import annotations

from cellar_server.core.exceptions import ServiceError

# code -> (HTTP status on Cellar's REST API, MLflow error code)
CODES = {
    "not_found": (404, "RESOURCE_DOES_NOT_EXIST"),
    # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE; Cellar's REST API with 404.
    "alias_not_found": (404, "INVALID_PARAMETER_VALUE"),
    "model_exists": (409, "RESOURCE_ALREADY_EXISTS"),
    "invalid": (400, "INVALID_PARAMETER_VALUE"),
    "no_model_files": (400, "INVALID_PARAMETER_VALUE"),
    "alias_frozen": (409, "RESOURCE_CONFLICT"),
    "missing_scope": (403, "PERMISSION_DENIED"),
}


class RegistryError(ServiceError):
    def __init__(self, code: str, message: str):
        status, mlflow_code = CODES[code]
        super().__init__(code, message, status_code=status)
        self.mlflow_code = mlflow_code


def not_found(message: str) -> RegistryError:
    return RegistryError("not_found", message)


def invalid(message: str) -> RegistryError:
    return RegistryError("invalid", message)
