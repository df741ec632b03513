from django.contrib import admin

from cellar_server.compute.models import Pool, Worker


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    # Pools are edited through the API (services validate them); the admin shows them.
    list_display = ("name", "min_workers", "max_workers", "concurrency", "gpus", "cpu", "memory")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("name", "pool", "host", "state", "current_tasks", "gpu_fallback", "last_seen")
    list_filter = ("pool", "state")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
