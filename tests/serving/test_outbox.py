"""serve's outbox against a real HTTP server: batches, the credential, retry while the control
plane fails, and records it refuses are dropped instead of blocking the queue."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cellar_worker.serve.outbox import Outbox


class Control:
    def __init__(self):
        self.statuses: list[int] = []  # answers to give, in order; then 200
        self.batches: list[list] = []
        self.auth: list[str] = []
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                control.auth.append(self.headers.get("Authorization", ""))
                status = control.statuses.pop(0) if control.statuses else 200
                if status == 200:
                    control.batches.append(body["records"])
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/records"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def control():
    server = Control()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_batches_carry_the_credential_and_keep_order(control):
    outbox = Outbox(control.url, "csv_secret", max_batch=3)
    for i in range(7):
        outbox.put({"i": i})
    assert outbox.flush() == 7
    assert [len(b) for b in control.batches] == [3, 3, 1]
    assert [r["i"] for b in control.batches for r in b] == list(range(7))
    assert set(control.auth) == {"Bearer csv_secret"}


def test_records_wait_while_the_control_plane_fails_then_go(control):
    outbox = Outbox(control.url, "t", max_batch=10)
    control.statuses = [503]
    for i in range(5):
        outbox.put({"i": i})
    assert outbox.flush() == 0 and outbox.pending == 5 and outbox.failures == 1
    outbox.put({"i": 5})
    assert outbox.flush() == 6
    assert [r["i"] for r in control.batches[0]] == list(range(6))


def test_refused_records_are_dropped_not_retried_forever(control):
    outbox = Outbox(control.url, "t", max_batch=2)
    control.statuses = [400]
    for i in range(4):
        outbox.put({"i": i})
    assert outbox.flush() == 2
    assert outbox.dropped == 2 and [r["i"] for r in control.batches[0]] == [2, 3]


def test_capacity_drops_the_oldest_and_the_thread_flushes(control):
    outbox = Outbox(control.url, "t", capacity=3, flush_seconds=0.05)
    for i in range(5):
        outbox.put({"i": i})
    outbox.start()
    outbox.stop(flush=True)
    assert [r["i"] for b in control.batches for r in b] == [2, 3, 4]


def test_unreachable_control_plane_keeps_records(control):
    outbox = Outbox("http://127.0.0.1:9/records", "t")
    outbox.put({"i": 1})
    assert outbox.flush() == 0 and outbox.pending == 1
