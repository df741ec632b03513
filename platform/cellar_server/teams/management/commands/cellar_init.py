"""First start: a platform admin, a demo team and a token, if no user exists yet.

Prints the login and the token once. CELLAR_ADMIN_USER / CELLAR_ADMIN_PASSWORD
choose them; otherwise the user is `admin` with a random password.
"""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from cellar_server.teams import bootstrap


class Command(BaseCommand):
    help = "Create the first admin user and a demo team when the database has no user."

    @transaction.atomic
    def handle(self, *args, **opts):
        # The notebook hub signs users in through Cellar: its OAuth client and secret file (workspaces).
        call_command("cellar_hub_setup", stdout=self.stdout)
        if get_user_model().objects.exists():
            self.stdout.write("cellar: users exist; nothing to initialise.")
            return
        username = os.environ.get("CELLAR_ADMIN_USER", "admin")
        password = os.environ.get("CELLAR_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        result = bootstrap.bootstrap(
            team_slug="demo", username=username, password=password, staff=True, token_file=None
        )
        port = os.environ.get("CELLAR_PORT", "8000")
        bind = os.environ.get("CELLAR_BIND", "127.0.0.1")
        host = "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind
        banner = [
            "",
            "=" * 64,
            "  Cellar is initialised. Sign in (shown once):",
            f"    URL:      http://{host}:{port}/",
            f"    user:     {username}",
            f"    password: {password}",
            f"    token:    {result.token}  (team 'demo')",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(banner))
