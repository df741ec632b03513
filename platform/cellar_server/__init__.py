"""Cellar's control plane: the Django project (web, REST API, control tasks)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
