"""Page routes: /t/<team>/deployments/…"""

from django.urls import path

from cellar_server.serving import views

app_name = "serving"

urlpatterns = [
    path("t/<slug:team_slug>/deployments/", views.deployments, name="deployments"),
    # Before <deployment_name>/: "new" is not a deployment (a POST-only form target).
    path("t/<slug:team_slug>/deployments/new/", views.deployment_create, name="deployment-create"),
    path("t/<slug:team_slug>/deployments/<slug:deployment_name>/", views.deployment, name="deployment"),
    path("t/<slug:team_slug>/deployments/<slug:deployment_name>/routes/", views.routes_update, name="routes-update"),
    path("t/<slug:team_slug>/deployments/<slug:deployment_name>/keys/", views.key_create, name="key-create"),
    path(
        "t/<slug:team_slug>/deployments/<slug:deployment_name>/keys/<int:key_id>/revoke/",
        views.key_revoke,
        name="key-revoke",
    ),
]
