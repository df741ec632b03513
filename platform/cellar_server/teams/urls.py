"""Page routes of the admin console."""

from django.urls import path

from cellar_server.teams import views

app_name = "teams"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    path("teams/", views.team_list, name="list"),
    path("invitations/<str:secret>/", views.invitation, name="invitation"),
    path(TEAM, views.team_home, name="home"),
    path(TEAM + "delete/", views.team_delete, name="delete"),
    path(TEAM + "admin/members/", views.members, name="members"),
    path(TEAM + "admin/members/<str:username>/role/", views.member_role, name="member-role"),
    path(TEAM + "admin/members/<str:username>/remove/", views.member_remove, name="member-remove"),
    path(TEAM + "admin/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path(TEAM + "admin/tokens/", views.tokens, name="tokens"),
    path(TEAM + "admin/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path(TEAM + "admin/quotas/", views.quotas, name="quotas"),
    path(TEAM + "admin/audit/", views.audit, name="audit"),
]
