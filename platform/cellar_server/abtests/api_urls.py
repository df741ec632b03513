"""/api/v1/teams/<team>/ab-tests/… and /api/v1/ab-tests/exposures/."""

from django.urls import path, re_path

from cellar_server.abtests import apis

TESTS = "teams/<slug:team_slug>/ab-tests/"
TEST = TESTS + "<int:test_id>/"


def _action(name: str, method: str = "post"):
    return apis.ABTestApi.as_view({method: name})


urlpatterns = [
    path(TESTS, apis.ABTestApi.as_view({"get": "list", "post": "create"}), name="abtest-list"),
    path(TEST, apis.ABTestApi.as_view({"get": "retrieve"}), name="abtest-detail"),
    path(TEST + "results/", _action("results", "get"), name="abtest-results"),
    path(TEST + "weights/", _action("weights"), name="abtest-weights"),
    path(TEST + "coverage/", _action("coverage"), name="abtest-coverage"),
    path(TEST + "stop/", _action("stop"), name="abtest-stop"),
    path(TEST + "extend/", _action("extend"), name="abtest-extend"),
    path(TEST + "promote/", _action("promote"), name="abtest-promote"),
    re_path(
        r"^teams/(?P<team_slug>[-a-zA-Z0-9_]+)/ab-tests/(?P<test_id>[0-9]+)/events/?$",
        _action("events"),
        name="abtest-events",
    ),  # fmt: skip
    path("ab-tests/exposures/", apis.ExposuresApi.as_view(), name="abtest-exposures"),
]
