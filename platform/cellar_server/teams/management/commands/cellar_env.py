"""Print the resolved environment (KEY=value lines) for the Procfile's processes."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cellar_server import config


class Command(BaseCommand):
    help = "Print CELLAR_HOME, REDIS_URL, DATABASE_URL and ARTIFACT_STORE_URL as resolved now."

    def add_arguments(self, parser):
        parser.add_argument("--get", metavar="KEY", help="print only this variable's value")

    def handle(self, *args, **opts):
        values = {
            "CELLAR_HOME": config.cellar_home(),
            "REDIS_URL": config.redis_url(),
            "DATABASE_URL": config.database_url(),
            "ARTIFACT_STORE_URL": config.artifact_store_url(),
        }
        if opts["get"]:
            if opts["get"] not in values:
                raise CommandError(f"unknown variable {opts['get']}; known: {', '.join(values)}")
            self.stdout.write(str(values[opts["get"]]))
            return
        for key, value in values.items():
            self.stdout.write(f"{key}={value}")
