"""Search documents on PostgreSQL (tracking/search/documents.py): three JSON columns on
tracking_run, unknown to the Django model, filled from the tables. Nothing on SQLite."""

from django.db import migrations

from cellar_server.tracking.search.documents import REBUILD_SQL

_ADD = """
ALTER TABLE tracking_run
  ADD COLUMN search_params jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN search_tags jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN search_metrics jsonb NOT NULL DEFAULT '{}';
CREATE INDEX tracking_run_search_params ON tracking_run USING gin (search_params jsonb_path_ops);
CREATE INDEX tracking_run_search_tags ON tracking_run USING gin (search_tags jsonb_path_ops);
-- Room on each page for the new version of a row whose metrics change (a HOT update:
-- no index entry is written, since the metrics document has no index).
ALTER TABLE tracking_run SET (fillfactor = 80);
"""

_DROP = """
ALTER TABLE tracking_run RESET (fillfactor);
ALTER TABLE tracking_run DROP COLUMN search_params, DROP COLUMN search_tags, DROP COLUMN search_metrics;
"""


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_ADD)
        schema_editor.execute(REBUILD_SQL.format(where="TRUE"))


def _backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_DROP)


class Migration(migrations.Migration):
    dependencies = [("tracking", "0004_drop_width_64_summaries")]

    operations = [migrations.RunPython(_forward, _backward)]
