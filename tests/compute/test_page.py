"""The compute page over the Django test client: who sees it, and a pinned query count that does not
grow with workers, samples or tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.compute import services
from cellar_server.compute.models import PoolSample
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.django_db


def workers(count: int, pool: str = "cpu") -> None:
    for i in range(count):
        services.worker_heartbeat_record(
            report={"worker": f"{pool}@box:{i}", "pool": pool, "host": "box", "pid": i, "current_tasks": 1}
        )


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", "owner"])
def test_every_member_sees_the_page(client, members, role):
    client.force_login(members[role])
    response = client.get("/t/acme/compute/")
    assert response.status_code == 200
    assert b'data-testid="pool-cpu"' in response.content and b'data-testid="team-usage"' in response.content


def test_another_team_gets_404_and_anonymous_the_login(client, team, outsider):
    assert client.get("/t/acme/compute/").status_code == 302
    client.force_login(outsider)
    assert client.get("/t/acme/compute/").status_code == 404


def test_the_query_count_does_not_grow(client, team, members, settings, django_assert_num_queries):
    settings.CELLAR_POOLS = ""
    client.force_login(members["viewer"])
    run = make_run(version_for(team))
    add_tasks(run, "square", 3)
    workers(1)
    client.get("/t/acme/compute/")  # warm: the session, the team
    with django_assert_num_queries(11) as small:
        client.get("/t/acme/compute/")
    add_tasks(run, "cube", 30)
    workers(6)
    workers(2, pool="gpu")
    PoolSample.objects.bulk_create(
        PoolSample(pool="cpu", at=timezone.now() - timedelta(minutes=m), workers=2, demand=9) for m in range(50)
    )
    with django_assert_num_queries(len(small.captured_queries)):
        response = client.get("/t/acme/compute/")
    assert response.content.count(b"<code>cpu@box:") == 6


def test_staff_edit_a_pool_from_the_page(client, team, members, staff):
    from cellar_server.compute.models import Pool

    client.force_login(members["owner"])
    assert b'data-testid="edit-cpu"' not in client.get("/t/acme/compute/").content
    body = {"cpu-min_workers": 0, "cpu-max_workers": 6, "cpu-concurrency": 2, "cpu-gpus": 0, "cpu-memory": "8Gi"}
    assert client.post("/t/acme/compute/pools/cpu/", body).status_code == 403
    assert Pool.objects.get(name="cpu").max_workers != 6

    client.force_login(staff)
    # Staff read every team (STAFF_SCOPES), so the page and its form are theirs on any team.
    page = client.get("/t/acme/compute/")
    assert page.status_code == 200 and b'data-testid="edit-cpu"' in page.content
    answer = client.post("/t/acme/compute/pools/cpu/", body, follow=True)
    assert b"Pool cpu saved." in answer.content
    pool = Pool.objects.get(name="cpu")
    assert (pool.min_workers, pool.max_workers, pool.concurrency, pool.memory) == (0, 6, 2, 8 * 1024**3)
    # The memory shown back (bytes) is accepted as it is; a rule broken is said on the page.
    again = client.post("/t/acme/compute/pools/cpu/", {**body, "cpu-memory": str(pool.memory), "cpu-min_workers": 9})
    assert again.status_code == 302
    assert Pool.objects.get(name="cpu").min_workers == 0
    shown = client.get("/t/acme/compute/").content
    assert b"cannot exceed max_workers" in shown
