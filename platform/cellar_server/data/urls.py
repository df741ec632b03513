"""Page routes: /t/<team>/data/…"""

from django.urls import path

from cellar_server.data import views

app_name = "data"

T = "t/<slug:team_slug>/data/"

urlpatterns = [
    path(T, views.overview, name="overview"),
    path(T + "secrets/", views.secret_save, name="secret-save"),
    path(T + "secrets/<slug:name>/delete/", views.secret_delete, name="secret-delete"),
    path(T + "connections/", views.connection_create, name="connection-create"),
    path(T + "connections/<slug:name>/delete/", views.connection_delete, name="connection-delete"),
    path(T + "connections/<slug:name>/test/", views.connection_test, name="connection-test"),
    path(T + "retention/", views.retention_save, name="retention-save"),
    path(T + "gc/", views.gc_run, name="gc-run"),
    path(T + "datasets/<int:dataset_id>/", views.dataset_detail, name="dataset"),
]
