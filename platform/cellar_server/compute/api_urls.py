"""/api/v1/compute/… routes (platform-wide: pools are shared by every team)."""

from django.urls import path

from cellar_server.compute import apis

urlpatterns = [
    path("compute/pools/", apis.PoolListApi.as_view(), name="compute-pool-list"),
    path("compute/pools/<slug:name>/", apis.PoolDetailApi.as_view(), name="compute-pool-detail"),
    path("compute/pools/<slug:name>/demand/", apis.PoolDemandApi.as_view(), name="compute-pool-demand"),
    path("compute/workers/heartbeats/", apis.WorkerHeartbeatApi.as_view(), name="compute-worker-heartbeats"),
    path(
        "teams/<slug:team_slug>/compute/usage/",
        apis.TeamUsageApi.as_view({"get": "retrieve"}),
        name="compute-team-usage",
    ),
]
