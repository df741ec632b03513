"""Curve summaries are no longer kept at width 64 (tracking/curves.py WIDTHS): delete those rows.

The other widths are unchanged, so every stored summary that charts read stays valid. Going back
does not restore them: charts of the points logged until then would read the next width.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0003_hot_path_indexes"),
    ]

    operations = [
        migrations.RunSQL("DELETE FROM tracking_metricbucket WHERE width = 64", reverse_sql=migrations.RunSQL.noop),
    ]
