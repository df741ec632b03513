"""`make up` on the embedded defaults: every process starts, answers, and stops on Ctrl-C.

Two instances run side by side (own CELLAR_HOME, own port, own Redis socket).
This is the real thing: make, honcho, gunicorn, two Celery workers and redis-server.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from celery import Celery

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Instance:
    def __init__(self, home: Path):
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "make-up.log"
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
        env.update(CELLAR_HOME=str(home), CELLAR_PORT=str(self.port), CELLAR_ADMIN_PASSWORD="first-login-pw")
        home.mkdir(parents=True)
        self.proc = subprocess.Popen(
            ["make", "up"],
            cwd=REPO,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()[-3000:]
            try:
                last = requests.get(f"{self.url}/readyz", timeout=5)
                out = self.output()
                if (
                    last.status_code == 200
                    and re.search(r"cpu@\S+ ready", out)
                    and re.search(r"control@\S+ ready", out)
                ):
                    return last.json()
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"not ready: {last and last.text}\n{self.output()[-3000:]}")

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.proc_handle()] + self.proc_handle().children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def proc_handle(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                # Generous: warm shutdowns (control, agents, the hub and its proxy) on a machine
                # busy with the rest of the suite took over 30 s once; the point is that it ends.
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                still = [" ".join(p.cmdline()) for p in self.processes()]
                os.killpg(self.proc.pid, signal.SIGKILL)
                raise AssertionError(f"make up did not stop in 90 s; still running: {still}\n{self.output()[-3000:]}")


def _leftovers(home: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if env.get("CELLAR_HOME") == str(home) or str(home) in " ".join(proc.info["cmdline"] or []):
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


@pytest.fixture
def instances(tmp_path):
    # Install first, once: two `make up`s must not both find the venv stale and pip-install at once.
    subprocess.run(["make", "install"], cwd=REPO, check=True, capture_output=True, timeout=600)
    started = [Instance(tmp_path / "one"), Instance(tmp_path / "two")]
    yield started
    for instance in started:
        instance.stop()


def test_make_up_runs_the_platform_and_stops_cleanly(instances):
    one, two = instances
    for instance in instances:
        ready = instance.wait_ready()
        assert ready["status"] == "ready" and all(c["ok"] for c in ready["checks"].values())
    assert one.port != two.port

    # The first start printed the admin's login and a token, once.
    out = one.output()
    assert "user:     admin" in out and "password: first-login-pw" in out
    token = re.search(r"token:\s+(cellar_\S+)", out).group(1)

    # A person signs in with that login; a script uses the token.
    session = requests.Session()
    login_page = session.get(f"{one.url}/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    signed_in = session.post(
        f"{one.url}/accounts/login/",
        data={"username": "admin", "password": "first-login-pw", "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{one.url}/accounts/login/"},
    )
    assert signed_in.url.endswith("/teams/") and "demo" in signed_in.text
    members = requests.get(f"{one.url}/api/v1/teams/demo/members/", headers={"Authorization": f"Bearer {token}"})
    assert members.status_code == 200 and members.json()["results"][0]["username"] == "admin"
    # The other instance has its own database: the first one's token means nothing there.
    assert requests.get(f"{two.url}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # Both Celery workers (control and the cpu pool agent) answer on each instance's own Redis.
    sock = one.home / "redis" / "redis.sock"
    assert sock.exists() and (two.home / "redis" / "redis.sock").exists()
    probe = Celery(broker=f"redis+socket://{sock}")
    replies = {name.split("@")[0] for reply in probe.control.ping(timeout=3) for name in reply}
    assert replies == {"control", "cpu"}

    # The pool agent holds no database credentials.
    agent = next(p for p in one.processes() if "cellar-worker" in " ".join(p.cmdline()))
    assert "DATABASE_URL" not in agent.environ()

    one.stop()
    assert one.proc.returncode is not None
    time.sleep(1)
    assert _leftovers(one.home) == []
    # Stopping one instance leaves the other running.
    assert requests.get(f"{two.url}/readyz", timeout=5).status_code == 200
