"""Create (or check) the hub's OAuth client and Cellar's hub service token, for `make up`.

The hub reads both from CELLAR_HOME/hub/ (or the variables docs/workspaces.md lists).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from cellar_server.workspaces import keys, services


class Command(BaseCommand):
    help = "Create the JupyterHub OAuth client (secret written under CELLAR_HOME/hub/) and the hub service token."

    def add_arguments(self, parser):
        parser.add_argument(
            "--redirect-uri", help="the hub's OAuth callback (default: $CELLAR_HUB_URL/hub/oauth_callback)"
        )

    def handle(self, *args, **opts):
        client = services.hub_oauth_client_ensure(redirect_uri=opts.get("redirect_uri"))
        keys.hub_api_token()
        verb = "created" if client.created else "ready"
        self.stdout.write(f"cellar: hub OAuth client {verb} ({client.redirect_uri}); secret in {keys.hub_oauth_file()}")
