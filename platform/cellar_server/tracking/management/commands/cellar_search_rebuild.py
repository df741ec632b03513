"""`manage.py cellar_search_rebuild`: recompute every run's search documents from the tables."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from cellar_server.tracking.search import documents


class Command(BaseCommand):
    help = (
        "Recompute the runs' search documents (PostgreSQL) from their params, tags and latest metrics: "
        "after loading tracking data with SQL (docs/tracking.md). Nothing to do on SQLite."
    )

    def handle(self, *args, **options) -> None:
        if not documents.enabled():
            self.stdout.write("SQLite keeps no search documents: nothing to rebuild.")
            return
        with transaction.atomic():
            count = documents.rebuild()
        self.stdout.write(f"Rebuilt the search documents of {count} runs.")
