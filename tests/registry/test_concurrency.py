"""Concurrent registrations on PostgreSQL number versions without gaps or duplicates."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from cellar_server.registry import services
from cellar_server.registry.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


def test_parallel_version_creates_get_distinct_numbers(team, actor, logged_run):
    model = services.model_create(team=team, actor=actor, name="churn")
    sources = [f"runs:/{logged_run().run_uuid}/model" for _ in range(6)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(sources))

    def register(source: str) -> None:
        try:
            barrier.wait()
            services.version_create(team=team, actor=actor, model=model, source=source)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    numbers = sorted(ModelVersion.all_teams.filter(model=model).values_list("version", flat=True))
    assert numbers == [1, 2, 3, 4, 5, 6]
