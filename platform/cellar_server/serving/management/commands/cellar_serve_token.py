"""Print the serve credential (CELLAR_SERVE_TOKEN or the one derived from the secret key)."""

from django.core.management.base import BaseCommand

from cellar_server.serving.credentials import serve_token


class Command(BaseCommand):
    help = "Print the credential serve processes use to read routes and report to the control plane."

    def handle(self, *args, **options) -> None:
        self.stdout.write(serve_token())
