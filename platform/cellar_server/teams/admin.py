"""Django admin for platform operators. Team data is read-only here: changes go
through the console or the API so that services validate and audit them."""

from django.contrib import admin

from cellar_server.teams.models import ApiToken, AuditEvent, Membership, Team


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "created_at", "max_concurrent_cpu_tasks", "max_concurrent_gpu_tasks")
    search_fields = ("slug", "name")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("team", "user", "role", "created_at")
    list_filter = ("role",)
    list_select_related = ("team", "user")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("team", "user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_select_related = ("team", "user")
    exclude = ("token_hash",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "team", "actor_name", "verb", "target_repr")
    list_filter = ("verb",)
    list_select_related = ("team",)
