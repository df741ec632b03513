"""Pipeline errors that carry a `detail` (the compile problems) beside the stable code."""

from __future__ import annotations

from typing import Any

from cellar_server.core.exceptions import ServiceError


class PipelineError(ServiceError):
    """A ServiceError with structured `detail`, e.g. {"problems": [problem.to_dict(), ...]}."""

    def __init__(self, code: str, message: str, *, detail: Any = None, status_code: int | None = None):
        super().__init__(code, message, status_code=status_code)
        self.detail = detail
