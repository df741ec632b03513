"""Cellar's Python SDK: `from cellar import Client`."""

from cellar.client import CellarAPIError, Client

__version__ = "0.1.0"
__all__ = ["CellarAPIError", "Client", "__version__"]
