"""`manage.py cellar_secrets_rotate`: re-encrypt every secret with the first CELLAR_SECRETS_KEY."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from cellar_server.data import services


class Command(BaseCommand):
    help = "Re-encrypt every team secret with the first key of CELLAR_SECRETS_KEY (then drop the old key)."

    def handle(self, *args, **options) -> None:
        count = services.secrets_rotate()
        self.stdout.write(f"re-encrypted {count} secrets with the first key")
