"""A minimal control plane for the serving benchmark: answers serve's route polls with one
fixed manifest (ETag → 304) and accepts health reports and the prediction-log outbox, counting
the records. The real control plane is not on the predict path (serve polls it once a second and
flushes logs every two seconds), so the benchmark measures serve alone; tests/serving/ run serve
against the real web process."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubControl:
    def __init__(self, manifest: dict[str, Any], token: str):
        self.body = json.dumps({"deployments": [manifest]}).encode()
        self.token = token
        self.records = 0
        self.samples = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    self.send_response(401)
                    self.end_headers()
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.headers.get("If-None-Match") == '"bench"':
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", '"bench"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                for record in data.get("records", []):
                    stub.records += 1
                    if record.get("kind") == "sample":
                        stub.samples += len(record["rows"])
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubControl:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
