"""Print each pool's capacity (max workers x concurrency) as CELLAR_ENGINE_POOL_WORKERS JSON.

The dispatcher sizes a pool's in-flight window and its messages on CELLAR_ENGINE_POOL_WORKERS; an
autoscaled pool needs the capacity it can grow to, not the one worker it may start with. `make up`
exports this unless the variable is already set.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from cellar_server.compute.selectors import pool_list


class Command(BaseCommand):
    help = "Print {pool: max_workers x concurrency} for CELLAR_ENGINE_POOL_WORKERS."

    def handle(self, *args, **opts):
        capacity = {pool.name: max(1, pool.max_workers * pool.concurrency) for pool in pool_list()}
        self.stdout.write(json.dumps(capacity or {"cpu": 1}, sort_keys=True))
