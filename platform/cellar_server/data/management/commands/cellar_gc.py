"""`manage.py cellar_gc [--team SLUG] [--dry-run] [--grace SECONDS]`: sweep unreferenced blobs."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cellar_server.data import gc
from cellar_server.teams.models import Team


class Command(BaseCommand):
    help = "Delete content-addressed blobs nothing references (docs/data.md). --dry-run reports only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", help="one team's slug (default: every team)")
        parser.add_argument("--dry-run", action="store_true", help="report what would be freed; delete nothing")
        parser.add_argument(
            "--grace", type=float, default=None, help="seconds a fresh blob is kept (CELLAR_GC_GRACE_S)"
        )

    def handle(self, *args, team=None, dry_run=False, grace=None, **options) -> None:
        teams = Team.objects.filter(slug=team) if team else Team.objects.order_by("slug")
        if team and not teams.exists():
            raise CommandError(f"No team '{team}'.")
        verb = "would free" if dry_run else "freed"
        for row in teams:
            sweep = gc.gc_sweep(team=row, dry_run=dry_run, grace_s=grace)
            self.stdout.write(
                f"{row.slug}: {sweep.scanned} blobs ({sweep.scanned_bytes} bytes), {sweep.live} referenced, "
                f"{sweep.kept_recent} too recent; {verb} {sweep.deleted} blobs, {sweep.freed_bytes} bytes"
            )
