"""Team scoping fails closed, and the base viewset cannot be bypassed."""

from __future__ import annotations

import pytest

from cellar_server.core.scoping import TeamScopeError, current_team_id, team_scope
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.teams.models import ApiToken, AuditEvent, Invitation, Membership
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Membership, Invitation, ApiToken, AuditEvent], ids=lambda m: m.__name__)
def test_scoped_manager_refuses_to_query_without_a_team(model):
    with pytest.raises(TeamScopeError, match="team_scope"):
        list(model.objects.all())


def test_scoped_manager_returns_only_the_scoped_team(team, other_team):
    add_member(team, UserFactory(username="a"), "viewer")
    add_member(other_team, UserFactory(username="b"), "viewer")
    with team_scope(team.id):
        assert [m.user.username for m in Membership.objects.all()] == ["a"]
        assert Membership.objects.filter(user__username="b").count() == 0
    with team_scope(other_team.id):
        assert [m.user.username for m in Membership.objects.all()] == ["b"]
    assert current_team_id() is None
    assert Membership.all_teams.count() == 2


def test_scope_is_reset_after_an_api_request(api_as, team, members):
    api_as(members["viewer"]).get("/api/v1/teams/acme/members/")
    assert current_team_id() is None
    api_as(members["viewer"]).get("/api/v1/teams/acme/audit-events/")  # a 403 also resets
    assert current_team_id() is None


@pytest.mark.parametrize("method", ["get_queryset", "get_object", "get_permissions", "initial"])
def test_base_viewset_refuses_overrides(method):
    with pytest.raises(TypeError, match=method):
        type("Leaky", (TeamScopedViewSet,), {method: lambda self: None})


def test_every_team_api_view_uses_the_base_viewset():
    from django.urls import get_resolver

    from cellar_server.teams import api_urls

    for pattern in api_urls.urlpatterns:
        view_class = getattr(pattern.callback, "cls", None) or pattern.callback.view_class
        if "team_slug" in str(pattern.pattern):
            assert issubclass(view_class, TeamScopedViewSet), pattern.pattern
    assert get_resolver()  # the URLConf itself imports cleanly
