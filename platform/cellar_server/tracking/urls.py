"""Page routes of the tracking dashboards (experiments, runs, compare)."""

app_name = "tracking"

urlpatterns: list = []
