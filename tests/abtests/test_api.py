"""The A/B-test API: roles, other teams, bad input, phases, stop/extend/promote."""

import pytest

from cellar_server.abtests.models import ABTest, Phase
from cellar_server.teams.models import AuditEvent

URL = "/api/v1/teams/acme/ab-tests/"
# Session, user, team access, then the test with its arms and metrics, phase and aggregates:
# constant in the number of tests, arms and metrics.
QUERIES_LIST = 8
QUERIES_RESULTS = 9


@pytest.mark.parametrize(("role", "expected"), [("viewer", 403), ("editor", 403), ("admin", 201), ("owner", 201)])
def test_create_needs_abtests_write(api_as, members, deployment, create_body, role, expected):
    response = api_as(members[role]).post(URL, create_body(), format="json")
    assert response.status_code == expected, response.content
    if expected == 201:
        body = response.json()
        assert body["status"] == "running" and body["phase"] == 1
        assert [v["key"] for v in body["variants"]] == ["control", "b"]
        assert AuditEvent.all_teams.filter(verb="abtest.start", target_id=str(body["id"])).exists()
    else:
        assert response.json()["error"]["code"] == "missing_scope"


def test_another_team_sees_nothing(api_as, outsider, make_test):
    test = make_test()
    client = api_as(outsider)
    assert client.get(URL).status_code == 404
    for suffix in ("", "results/"):
        assert client.get(f"{URL}{test.pk}/{suffix}").status_code == 404
    for action in ("stop/", "promote/", "events"):
        assert client.post(f"{URL}{test.pk}/{action}", {}, format="json").status_code == 404
    own_team = client.get(f"/api/v1/teams/rival/ab-tests/{test.pk}/")
    assert own_team.status_code == 404 and own_team.json()["error"]["code"] == "unknown_ab_test"


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", "owner"])
def test_every_role_reads(api_as, members, make_test, role):
    test = make_test()
    client = api_as(members[role])
    assert client.get(URL).json()["results"][0]["id"] == test.pk
    assert client.get(f"{URL}{test.pk}/").json()["deployment"] == "ranker-api"
    results = client.get(f"{URL}{test.pk}/results/").json()
    assert results["decision"]["state"] == "collecting"


def _v(versions, *refs, weights=(0.5, 0.5)):
    out = []
    for ref, w in zip(refs, weights, strict=True):
        model, i = ref.split(":")
        out.append({"version_id": versions[model][int(i)], "weight": w})
    return out


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        (lambda v: {"variants": _v(v, "ranker:0", "ranker:1", weights=(0.5, 0.6))}, "weights_must_sum_to_one"),
        (lambda v: {"variants": _v(v, "ranker:0", "fraud:0")}, "variant_from_another_model"),
        (lambda v: {"variants": _v(v, "ranker:0", "rival:0")}, "unknown_model_version"),
        (lambda v: {"variants": _v(v, "ranker:0", "ranker:0")}, "duplicate_variant"),
        (lambda v: {"variants": _v(v, "ranker:1", "ranker:0")}, "control_not_champion"),
        (lambda v: {"variants": _v(v, "ranker:0", "ranker:1", weights=("half", 0.5))}, "invalid_weights"),
        (lambda v: {"variants": _v(v, "ranker:0", weights=(1,))}, "invalid_variants"),
        (lambda v: {"metrics": [{"name": "a", "kind": "mean", "role": "secondary"}]}, "one_primary_metric"),
        (lambda v: {"metrics": [{"name": "a", "kind": "median", "role": "primary"}]}, "invalid_metric_kind"),
        (lambda v: {"metrics": [{"name": "a", "kind": "ratio", "role": "primary"}]}, "invalid_denominator"),
        (lambda v: {"deployment": "nope"}, "unknown_deployment"),
        (lambda v: {"coverage": 1.5}, "invalid_coverage"),
        (lambda v: {"colour": "red"}, "unknown_field"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_is_a_clear_400_and_writes_nothing(
    api_as, members, deployment, versions, create_body, overrides, code
):
    response = api_as(members["admin"]).post(URL, create_body(**overrides(versions)), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not ABTest.all_teams.exists()


def test_one_running_test_per_deployment(api_as, members, make_test, create_body):
    make_test()
    response = api_as(members["admin"]).post(URL, create_body(), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "test_already_running"


def test_weights_start_a_new_phase_coverage_does_not(api_as, members, make_test):
    test = make_test()
    admin = api_as(members["admin"])
    r = admin.post(f"{URL}{test.pk}/coverage/", {"coverage": 0.3}, format="json")
    assert r.status_code == 200 and r.json()["phase"] == 1 and r.json()["coverage"] == 0.3
    r = admin.post(f"{URL}{test.pk}/weights/", {"weights": [0.8, 0.3]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "weights_must_sum_to_one"
    r = admin.post(f"{URL}{test.pk}/weights/", {"weights": [0.8, 0.2]}, format="json")
    assert r.status_code == 200 and r.json()["phase"] == 2
    phases = list(Phase.all_teams.filter(test=test).order_by("number"))
    assert phases[0].ended_at is not None and phases[1].weights == [0.8, 0.2] and phases[1].coverage == 0.3
    assert (
        api_as(members["editor"]).post(f"{URL}{test.pk}/weights/", {"weights": [0.5, 0.5]}, format="json").status_code
        == 403
    )


def test_stop_and_extend(api_as, members, make_test):
    test = make_test()
    admin = api_as(members["admin"])
    ends = ABTest.all_teams.get(pk=test.pk).ends_at
    assert api_as(members["editor"]).post(f"{URL}{test.pk}/extend/", {"days": 3}, format="json").status_code == 403
    r = admin.post(f"{URL}{test.pk}/extend/", {"days": 3}, format="json")
    assert r.status_code == 200
    assert (ABTest.all_teams.get(pk=test.pk).ends_at - ends).days == 3
    assert admin.post(f"{URL}{test.pk}/extend/", {"days": "x"}, format="json").json()["error"]["code"] == "invalid_days"
    assert api_as(members["viewer"]).post(f"{URL}{test.pk}/stop/", {}, format="json").status_code == 403
    r = admin.post(f"{URL}{test.pk}/stop/", {"reason": "enough"}, format="json")
    assert r.json()["status"] == "stopped"
    r = admin.post(f"{URL}{test.pk}/stop/", {}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "test_not_running"
    assert AuditEvent.all_teams.filter(verb__in=["abtest.stop", "abtest.extend"]).count() == 2


def test_promote_when_not_ready_needs_a_typed_reason(api_as, members, make_test, team, versions):
    test = make_test()
    admin = api_as(members["admin"])
    r = admin.post(f"{URL}{test.pk}/promote/", {"arm": "b"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "reason_required"
    assert "not ready" in r.json()["error"]["message"]
    assert (
        api_as(members["editor"])
        .post(f"{URL}{test.pk}/promote/", {"arm": "b", "reason": "x" * 20}, format="json")
        .status_code
        == 403
    )
    r = admin.post(f"{URL}{test.pk}/promote/", {"arm": "b", "reason": "ship it, product decision"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "promoted" and r.json()["winner"] == "b"
    from cellar_server.serving.models import Route

    routes = [(x.version_id, x.weight) for x in Route.all_teams.filter(team=team)]
    assert routes == [(versions["ranker"][1], 1.0)]
    from cellar_server.registry.selectors import model_version_get

    assert model_version_get(team=team, name="ranker", alias="champion").version == 2
    audit = AuditEvent.all_teams.get(verb="abtest.promote")
    assert audit.details["reason"] == "ship it, product decision" and audit.details["ready"] is False


def test_list_and_results_query_counts_are_pinned(api_as, members, make_test, django_assert_num_queries):
    from cellar_server.abtests import aggregates
    from cellar_server.abtests.services import abtest_stop
    from cellar_server.teams.actors import Actor

    tests = [make_test()]
    abtest_stop(test=tests[0], actor=Actor(user=members["admin"]))
    tests.append(make_test(name="second"))
    aggregates.aggregates_refresh(test=tests[1])
    client = api_as(members["viewer"])
    with django_assert_num_queries(QUERIES_LIST):
        assert len(client.get(URL).json()["results"]) == 2
    with django_assert_num_queries(QUERIES_RESULTS):
        assert client.get(f"{URL}{tests[1].pk}/results/").status_code == 200


@pytest.mark.parametrize("role", ["viewer", "editor"])
@pytest.mark.parametrize(
    ("action", "body"),
    [("weights/", {"weights": [0.5, 0.5]}), ("coverage/", {"coverage": 0.5}), ("stop/", {}),
     ("extend/", {"days": 1}), ("promote/", {"arm": "b", "reason": "because I say so"})],
)  # fmt: skip
def test_every_write_action_needs_abtests_write(api_as, members, make_test, role, action, body):
    test = make_test()
    r = api_as(members[role]).post(f"{URL}{test.pk}/{action}", body, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "missing_scope"
    assert ABTest.all_teams.get(pk=test.pk).status == "running"
