"""Compute fixtures: the default pools (created by the data migration), staff, the worker credential."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def default_pools(request):
    """The migration's pools, made again when a transactional test before this one flushed them."""
    if request.node.get_closest_marker("django_db") is None and "db" not in request.fixturenames:
        return None
    from cellar_server.compute.services import pools_ensure_defaults

    return pools_ensure_defaults()


@pytest.fixture
def staff(db):
    user = UserFactory(username="platform-admin")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def worker_api(db):
    """An API client holding the worker credential, as agents and autoscalers do."""
    from rest_framework.test import APIClient

    from cellar_server.compute.credentials import worker_token

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {worker_token()}")
    return api


def heartbeat(**fields):
    body = {"worker": "cpu@box:1", "pool": "cpu", "host": "box", "pid": 1, "current_tasks": 0}
    body.update(fields)
    return body
