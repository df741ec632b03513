"""What can go wrong while tracking, split by what the SDK does about it."""

from __future__ import annotations

from cellar.client import CellarAPIError


class TrackingError(CellarAPIError):
    """The tracking server refused a request (a 4xx other than 408/429): retrying cannot help.

    `code` is MLflow's error code (e.g. INVALID_PARAMETER_VALUE) and `message` the server's words.
    """


class TransientError(Exception):
    """The server could not be reached or answered 5xx/408/429: the request may be sent again."""


class ConfigurationError(Exception):
    """Login or run settings are missing or contradict each other."""
