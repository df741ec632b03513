"""Read-only admin views: secrets, connections and data sets change through services (audited,
validated); the admin never shows a secret's ciphertext."""

from django.contrib import admin

from cellar_server.data.models import Connection, Dataset, GcSweep, RetentionPolicy, Secret


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Secret)
class SecretAdmin(ReadOnly):
    list_display = ("name", "team", "description", "updated_at", "updated_by")
    exclude = ("ciphertext",)


@admin.register(Connection)
class ConnectionAdmin(ReadOnly):
    list_display = ("name", "team", "kind", "updated_at", "last_test_ok")
    list_filter = ("kind",)


@admin.register(Dataset)
class DatasetAdmin(ReadOnly):
    list_display = ("name", "team", "uri", "digest", "kind", "size", "created_at")
    list_filter = ("kind", "source")


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ReadOnly):
    list_display = ("team", "enabled", "keep_last_runs", "expire_after_days", "updated_at")


@admin.register(GcSweep)
class GcSweepAdmin(ReadOnly):
    list_display = ("team", "started_at", "dry_run", "scanned", "deleted", "freed_bytes", "error")
