"""/api/v1/… routes for teams."""

from django.urls import path

from cellar_server.teams import apis

TEAM = "teams/<slug:team_slug>/"

urlpatterns = [
    path("teams/", apis.TeamListApi.as_view(), name="team-list"),
    path("me/", apis.MeApi.as_view(), name="me"),
    path("invitations/accept/", apis.InvitationAcceptApi.as_view(), name="invitation-accept"),
    path(
        TEAM,
        apis.TeamDetailApi.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="team-detail",
    ),
    path(TEAM + "quotas/", apis.QuotaApi.as_view({"get": "retrieve", "patch": "partial_update"}), name="team-quotas"),
    path(TEAM + "members/", apis.MemberApi.as_view({"get": "list"}), name="member-list"),
    path(
        TEAM + "members/<str:username>/",
        apis.MemberApi.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="member-detail",
    ),
    path(
        TEAM + "invitations/",
        apis.InvitationApi.as_view({"get": "list", "post": "create"}),
        name="invitation-list",
    ),
    path(TEAM + "invitations/<int:pk>/", apis.InvitationApi.as_view({"delete": "destroy"}), name="invitation-detail"),
    path(TEAM + "tokens/", apis.TokenApi.as_view({"get": "list", "post": "create"}), name="token-list"),
    path(TEAM + "tokens/<int:pk>/", apis.TokenApi.as_view({"delete": "destroy"}), name="token-detail"),
    path(TEAM + "audit-events/", apis.AuditEventApi.as_view({"get": "list"}), name="audit-event-list"),
]
