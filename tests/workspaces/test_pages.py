"""The Workspace page without a hub behind it, and who may open it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_hub(settings):
    settings.CELLAR_HUB_API_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    return settings


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_page_says_the_hub_is_down_instead_of_failing(members, no_hub):
    response = signed_in(members["viewer"]).get("/t/acme/workspace/")
    assert response.status_code == 200
    assert b'data-testid="workspace-error"' in response.content and b"hub" in response.content


def test_starting_with_an_unknown_profile_is_refused_on_the_page(members, no_hub):
    response = signed_in(members["editor"]).post("/t/acme/workspace/start/", {"profile": "tpu"})
    assert response.status_code == 200 and b"not a workspace profile" in response.content


def test_another_teams_workspace_page_is_not_found(outsider, team, no_hub):
    assert signed_in(outsider).get("/t/acme/workspace/").status_code == 404


def test_start_and_stop_need_post_and_a_signed_in_user(members, no_hub):
    assert Client().get("/t/acme/workspace/").status_code == 302
    assert signed_in(members["viewer"]).get("/t/acme/workspace/start/").status_code == 405


def test_the_nav_links_the_workspace(members, no_hub):
    response = signed_in(members["viewer"]).get("/t/acme/workspace/")
    assert b'data-nav="workspace"' in response.content and b'href="/t/acme/workspace/"' in response.content


def test_open_in_notebook_needs_a_run_and_a_step(members, no_hub):
    client = signed_in(members["viewer"])
    assert client.get("/t/acme/workspace/open/?pipeline=churn&run=x&step=train").status_code == 400
    assert client.get("/t/acme/workspace/open/?pipeline=churn&run=3").status_code == 400


def test_open_in_notebook_says_when_the_hub_is_down(members, no_hub):
    response = signed_in(members["viewer"]).get("/t/acme/workspace/open/?pipeline=churn&run=3&step=train")
    assert response.status_code == 200 and b'data-testid="workspace-error"' in response.content
    assert b"churn #3" in response.content
