"""Outcome events: idempotency, bad input, roles, concurrency; serve's exposure outbox."""

import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from cellar_server.abtests.models import Event, Exposure
from cellar_server.serving.credentials import serve_token


def _events(n, prefix="e", unit="u", name="converted", value=1):
    return [{"id": f"{prefix}{i}", "unit_id": f"{unit}{i % 50}", "name": name, "value": value} for i in range(n)]


def url(test):
    return f"/api/v1/teams/acme/ab-tests/{test.pk}/events"


def test_duplicates_are_counted_once(api_as, members, make_test):
    test = make_test()
    client = api_as(members["editor"])
    batch = _events(100)
    r = client.post(url(test), {"events": batch + batch[:10]}, format="json")
    assert r.status_code == 202 and r.json() == {"received": 110, "stored": 100, "duplicates": 10}
    r = client.post(url(test) + "/", {"events": batch[50:] + _events(5, prefix="new")}, format="json")
    assert r.json() == {"received": 55, "stored": 5, "duplicates": 50}
    assert Event.all_teams.filter(test=test).count() == 105


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"value": "12"}, "'value' must be a finite number"),
        ({"value": True}, "'value' must be a finite number"),
        ({"value": None}, "'value' must be a finite number"),
        ({"id": ""}, "'id'"),
        ({"unit_id": None}, "'unit_id'"),
        ({"name": "has space"}, "'name'"),
        ({"at": "yesterday"}, "'at'"),
    ],
)
def test_a_bad_event_refuses_the_batch_and_names_it(api_as, members, make_test, bad, fragment):
    test = make_test()
    batch = _events(5)
    batch[3] = {**batch[3], **bad}
    r = api_as(members["editor"]).post(url(test), {"events": batch}, format="json")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_events" and "events[3]" in error["message"] and fragment in error["message"]
    assert error["detail"]["errors"] == [{"index": 3, "message": error["detail"]["errors"][0]["message"]}]
    assert not Event.all_teams.exists()


def test_body_shape_and_unknown_test(api_as, members, make_test):
    test = make_test()
    client = api_as(members["editor"])
    assert client.post(url(test), {"events": []}, format="json").json()["error"]["code"] == "invalid_events"
    assert client.post(url(test), [1, 2], format="json").json()["error"]["code"] == "invalid_body"
    r = client.post(f"/api/v1/teams/acme/ab-tests/{test.pk + 999}/events", {"events": _events(1)}, format="json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_ab_test"
    assert f"no A/B test {test.pk + 999}" in r.json()["error"]["message"]


@pytest.mark.parametrize(("role", "expected"), [("viewer", 403), ("editor", 202), ("admin", 202), ("owner", 202)])
def test_sending_events_needs_experiments_write(api_as, members, make_test, role, expected):
    test = make_test()
    assert api_as(members[role]).post(url(test), {"events": _events(3)}, format="json").status_code == expected


def test_a_token_scoped_to_experiments_write_can_send(token_client, team, members, make_test):
    test = make_test()
    client, _ = token_client(team, members["editor"], scopes=["experiments:write"])
    assert client.post(url(test), {"events": _events(3)}, format="json").status_code == 202
    client, _ = token_client(team, members["editor"], scopes=["experiments:read"])
    assert client.post(url(test), {"events": _events(3, prefix="x")}, format="json").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_senders_lose_nothing_and_double_count_nothing(make_test, members):
    test = make_test()
    errors: list = []

    def send(k: int) -> None:
        client = APIClient()
        client.force_login(members["editor"])
        try:
            for b in range(5):
                # every sender also re-sends its neighbour's ids: overlaps across threads
                batch = _events(200, prefix=f"s{k}-b{b}-") + _events(200, prefix=f"s{(k + 1) % 8}-b{b}-")
                r = client.post(url(test), {"events": batch}, format="json")
                if r.status_code != 202:
                    errors.append(r.content)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Event.all_teams.filter(test=test).count() == 8 * 5 * 200


def test_serve_outbox_records_first_exposures_only(api, make_test):
    test = make_test()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {serve_token()}")
    unit = str(uuid.uuid4())
    records = [
        {"test_id": test.pk, "phase": 1, "unit_id": unit, "arm": 1, "at": "2026-01-01T00:00:05+00:00"},
        {"test_id": test.pk, "phase": 1, "unit_id": unit, "arm": 1, "at": "2026-01-01T00:00:01+00:00"},
        {"test_id": test.pk, "phase": 2, "unit_id": unit, "arm": 1},  # stale/unknown phase: skipped
        {"test_id": test.pk, "phase": 1, "unit_id": "x", "arm": 7},  # no such arm: skipped
        {"test_id": 999999, "phase": 1, "unit_id": "x", "arm": 0},  # unknown test: skipped
    ]
    r = api.post("/api/v1/ab-tests/exposures/", {"records": records}, format="json")
    assert r.status_code == 200 and r.json() == {"received": 5, "stored": 1, "skipped": 3}
    exposure = Exposure.all_teams.get(test=test)
    assert exposure.first_at.second == 1  # the earliest of a batch wins
    r = api.post("/api/v1/ab-tests/exposures/", {"records": records[:1]}, format="json")
    assert r.json()["stored"] == 0


def test_exposure_outbox_needs_the_serve_credential(api_as, members, api):
    assert api_as(members["owner"]).post("/api/v1/ab-tests/exposures/", {"records": []}, format="json").status_code in (
        401,
        403,
    )
    api.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert api.post("/api/v1/ab-tests/exposures/", {"records": []}, format="json").status_code == 401
