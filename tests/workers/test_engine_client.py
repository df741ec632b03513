"""The engine client: retries what may pass (connection errors, 5xx), never what will not (4xx)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cellar.pipelines.wire import Lease
from cellar_worker.engine_client import EngineClient, EngineRefused, EngineUnavailable


class _Flaky(BaseHTTPRequestHandler):
    """A proxy in trouble: 503 for the first `failures` requests, then the engine's answer."""

    failures = 2
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body})
        status, answer = (503, b"busy") if len(self.seen) <= self.failures else (200, b'{"claimed": [7]}')
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    _Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_5xx_is_retried_with_backoff_until_it_passes(flaky):
    client = EngineClient(flaky, worker="cpu@test:1", backoff=0.01)
    answer = client.claim([Lease(7, "lease", "token")], retry_for=30)
    assert answer == {"claimed": [7]}
    assert len(_Flaky.seen) == 3
    assert _Flaky.seen[-1] == {
        "path": "/api/v1/engine/claims/",
        "body": {
            "worker": "cpu@test:1",
            "tasks": [{"task": 7, "lease": "lease", "token": "token", "started_at": None}],
        },
    }
    client.close()


def test_an_engine_that_stays_down_is_unavailable_after_the_window():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    client = EngineClient(f"http://127.0.0.1:{port}", worker="w", backoff=0.01, max_backoff=0.02)
    with pytest.raises(EngineUnavailable, match="cannot reach"):
        client.report([], retry_for=0.2)


@pytest.mark.django_db(transaction=True)
def test_a_4xx_is_a_refusal_and_not_retried(live_server):
    client = EngineClient(live_server.url, worker="w", backoff=0.01)
    with pytest.raises(EngineRefused) as refused:
        client._post("claims/", {"tasks": "not a list"}, retry_for=30)
    assert refused.value.status == 400
    client.close()
