"""Create a user, a team and a token idempotently, for scripts and CI.

    manage.py cellar_bootstrap --team T --user U --password P --token-out FILE

Running it again changes nothing and keeps FILE's token if it still works.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction

from cellar_server.teams import bootstrap


class Command(BaseCommand):
    help = "Idempotently create a user (owner), a team and an API token written to a file."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True)
        parser.add_argument("--user", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="make the user a platform admin")
        parser.add_argument("--token-out", type=Path, help="write the team token here (mode 600)")

    @transaction.atomic
    def handle(self, *args, **opts):
        result = bootstrap.bootstrap(
            team_slug=opts["team"],
            username=opts["user"],
            password=opts["password"],
            email=opts["email"],
            staff=opts["staff"],
            token_file=opts["token_out"],
        )
        for line in result.lines:
            self.stdout.write(line)
