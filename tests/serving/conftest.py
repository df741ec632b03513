"""Serving fixtures: model versions registered into a real artifact store, and (for the process
tests) a real serve subprocess talking to the live web server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from cellar.artifacts import store_from_url
from cellar.models import reference_profile, save_model
from cellar_server.core.scoping import team_scope
from cellar_server.serving import services
from cellar_server.teams.actors import SYSTEM

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"


@pytest.fixture
def store_dir(tmp_path, settings):
    path = tmp_path / "artifacts"
    path.mkdir()
    settings.ARTIFACT_STORE_URL = f"file://{path}"
    return path


def training_data(seed: int = 0, n: int = 400, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n),
            "income": rng.normal(50.0 + shift, 15.0, n),
            "tenure": rng.integers(0, 20, n).astype("float64"),
        }
    )
    labels = (frame["age"] + frame["income"] / 2 + rng.normal(0, 5, n) > 65).astype(int)
    return frame, labels


def constant_model(value: float, frame):
    """A scikit-learn model answering `value` for every row: tells versions apart by their answers."""
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="constant", constant=value).fit(frame, [value] * len(frame))


def register_version(
    team, name: str, obj, frame, *, store_url: str, corrupt: bool = False, tmp: Path, pickle_bytes: bytes | None = None
):
    """Save `obj` (Cellar's MLflow-format directory), put its files in the store, add a ModelVersion.
    `corrupt` or `pickle_bytes` replace the pickled model's bytes."""
    from cellar_server.registry.models import ModelVersion, RegisteredModel

    target = tmp / f"model-{name}-{time.monotonic_ns()}"
    mlmodel = save_model(obj, target, input_example=frame.head(5))
    store = store_from_url(store_url)
    files = {}
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".pkl") and (corrupt or pickle_bytes is not None):
            data = pickle_bytes if pickle_bytes is not None else b"this is not a pickle"
        files[str(path.relative_to(target))] = store.put_blob(team.slug, data)
    model, _ = RegisteredModel.all_teams.get_or_create(team=team, name=name)
    with team_scope(team.id):
        number = ModelVersion.objects.filter(model=model).count() + 1
    return ModelVersion.all_teams.create(
        team=team,
        model=model,
        version=number,
        files=files,
        flavor=next(f for f in ("sklearn", "cellar", "python_function") if f in mlmodel["flavors"]),
        signature=mlmodel.get("signature"),
        profile=reference_profile(frame),
    )


@pytest.fixture
def register(store_dir, tmp_path):
    def make(team, name, obj, frame, *, corrupt: bool = False, pickle_bytes: bytes | None = None):
        return register_version(
            team, name, obj, frame, store_url=f"file://{store_dir}", corrupt=corrupt, tmp=tmp_path,
            pickle_bytes=pickle_bytes,
        )  # fmt: skip

    return make


@pytest.fixture
def deploy():
    """deploy(team, name, {version: weight}) → Deployment, as the system actor."""

    def make(team, name, weights):
        routes = [{"version_id": str(v.pk), "weight": w} for v, w in weights.items()]
        return services.deployment_create(team=team, actor=SYSTEM, name=name, routes=routes)

    return make


def mint_key(team, deployment) -> str:
    _, raw = services.deployment_key_create(team=team, actor=SYSTEM, deployment=deployment, name="test")
    return raw


# --- the serve process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServeProcess:
    url: str
    log: Path
    proc: subprocess.Popen
    session: requests.Session = field(default_factory=requests.Session)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def predict(self, team: str, deployment: str, payload, key: str | None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.session.post(
            f"{self.url}/serve/{team}/{deployment}/predict", json=payload, headers=headers, timeout=30, **kwargs
        )

    def ready(self) -> dict:
        return requests.get(f"{self.url}/readyz", timeout=10).json()

    def wait_for(self, predicate, *, timeout: float = 60, what: str = "the condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited:\n{self.output()[-4000:]}"
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; readyz={self.ready()}\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_serve(*, api_url: str, store_dir: Path, home: Path, token: str, extra_env=None) -> ServeProcess:
    port = free_port()
    drop = ("DATABASE_URL", "REDIS_URL", "ARTIFACT_STORE_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("CELLAR_")}
    env.update(
        CELLAR_HOME=str(home),
        CELLAR_API_URL=api_url,
        CELLAR_SERVE_TOKEN=token,
        ARTIFACT_STORE_URL=f"file://{store_dir}",
        CELLAR_SERVE_CACHE=str(home / "serve-cache"),
        CELLAR_SERVE_POLL_SECONDS="0.2",
        CELLAR_SERVE_FLUSH_SECONDS="0.3",
        # Given on purpose: serve drops it and never connects to the database.
        DATABASE_URL="postgres://should-not-be-used@127.0.0.1:1/none",
        **(extra_env or {}),
    )
    log = home / f"serve-{port}.log"
    proc = subprocess.Popen(
        [str(BIN / "cellar-worker"), "serve", "--port", str(port), "--loglevel", "INFO"],
        cwd=REPO,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    serve = ServeProcess(url=f"http://127.0.0.1:{port}", log=log, proc=proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited:\n{serve.output()[-4000:]}"
        if re.search(r"Uvicorn running on", serve.output()):
            return serve
        time.sleep(0.1)
    serve.stop()
    raise AssertionError(f"serve did not start:\n{serve.output()[-4000:]}")
