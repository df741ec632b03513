"""The control-plane Celery app: consumes the `control` queue.

Messages are JSON only (ARCHITECTURE.md, "Trust boundary"): the control
process never unpickles anything.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")

app = Celery("cellar_server")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
