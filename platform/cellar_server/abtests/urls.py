"""Page routes: /t/<team>/ab-tests/…"""

from django.urls import path

from cellar_server.abtests import views

app_name = "abtests"

BASE = "t/<slug:team_slug>/ab-tests/"
TEST = BASE + "<int:test_id>/"

urlpatterns = [
    path(BASE, views.test_list, name="list"),
    path(BASE + "new/", views.test_create, name="create"),
    path(TEST, views.test_detail, name="detail"),
    path(TEST + "refresh/", views.test_refresh, name="refresh"),
    path(TEST + "stop/", views.test_stop, name="stop"),
    path(TEST + "extend/", views.test_extend, name="extend"),
    path(TEST + "promote/", views.test_promote, name="promote"),
]
