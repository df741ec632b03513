"""Errors services raise; free of DRF so any layer can import them."""

from __future__ import annotations


class ServiceError(Exception):
    """Raised by services for a rule a caller broke; views turn it into 400/403/409."""

    status_code = 400

    def __init__(self, code: str, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if status_code is not None:
            self.status_code = status_code
