"""Print the worker credential pool agents and autoscalers send (compute/credentials.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from cellar_server.compute.credentials import worker_token


class Command(BaseCommand):
    help = "Print the worker credential (CELLAR_WORKER_TOKEN, or the one derived from the secret key)."

    def handle(self, *args, **opts):
        self.stdout.write(worker_token())
