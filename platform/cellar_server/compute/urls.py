"""Page routes: the compute page of a team (/t/<team>/compute/)."""

from django.urls import path

from cellar_server.compute import views

app_name = "compute"

urlpatterns = [
    path("t/<slug:team_slug>/compute/", views.pools, name="pools"),
    path("t/<slug:team_slug>/compute/pools/<slug:pool_name>/", views.pool_edit, name="pool-edit"),
]
