"""Fixtures for the data layer: a fresh secrets key, a saved secret, and running steps' task tokens."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from cellar_server.data import services
from cellar_server.teams.actors import Actor
from tests.pipelines.engine.conftest import build_notebook, cell, promote, start_run, store, worker  # noqa: F401

SECRET_VALUE = "hunter2-Zq9x-very-secret-value"
SECRET = "warehouse-password"


@pytest.fixture(autouse=True)
def secrets_key(settings):
    key = Fernet.generate_key().decode()
    settings.CELLAR_SECRETS_KEYS = [key]
    return key


@pytest.fixture
def admin_actor(members):
    return Actor(user=members["admin"])


@pytest.fixture
def secret(team, admin_actor):
    return services.secret_create(actor=admin_actor, team=team, name=SECRET, value=SECRET_VALUE, description="dwh")


def secrets_notebook():
    return build_notebook(
        cell("import cellar", "imports"),
        cell(f"pw = cellar.secret('{SECRET}')", "step:literal"),
        cell("other = 1", "step:undeclared"),
        cell("tagged = 2", "step:tagged", f"secrets:{SECRET}"),
        cell("conn = 3", "step:viaconn", "secrets:warehouse"),
    )


@pytest.fixture
def step_tokens(promote, start_run, worker, secret):  # noqa: F811
    """{step name: task token} for a run whose four independent steps are all in flight."""
    version = promote(secrets_notebook(), "secrets")
    run = start_run(version)
    assigned = worker.take(run)
    tokens = {a.step: a.item.token for a in assigned}
    assert set(tokens) == {"literal", "undeclared", "tagged", "viaconn"}, tokens
    tokens["_run"] = run
    return tokens
