"""Root URL map: pages, /api/v1/, the OpenAPI schema, probes and metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cellar_server.core import health, metrics
from cellar_server.core.errors import json_error

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="teams:list", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("cellar_server.teams.api_urls")),
    path("api/v1/", include("cellar_server.pipelines.api_urls")),
    path("api/v1/", include("cellar_server.workspaces.api_urls")),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/v1/", include("cellar_server.compute.api_urls")),
    path("api/v1/", include("cellar_server.data.api_urls")),
    path("api/v1/", include("cellar_server.serving.api_urls")),
    path("api/v1/", include("cellar_server.registry.api_urls")),
    path("api/v1/", include("cellar_server.abtests.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
    path("", include("cellar_server.tracking.mlflow.urls")),
    path("", include("cellar_server.tracking.urls")),
    path("", include("cellar_server.pipelines.urls")),
    path("", include("cellar_server.compute.urls")),
    path("", include("cellar_server.data.urls")),
    path("", include("cellar_server.serving.urls")),
    path("", include("cellar_server.abtests.urls")),
    path("", include("cellar_server.registry.urls")),
    path("", include("cellar_server.teams.urls")),
    path("", include("cellar_server.workspaces.urls")),
]


def _api_aware(page_handler, code: str, message: str, status: int):
    """JSON errors under /api/, the normal page elsewhere."""

    def handler(request, *args, **kwargs):
        if request.path.startswith("/api/"):
            return json_error(code, message, status)
        return page_handler(request, *args, **kwargs)

    return handler


def _page_404(request, exception=None):
    from django.views.defaults import page_not_found

    return page_not_found(request, exception, template_name="errors/404.html")


def _page_500(request):
    from django.views.defaults import server_error

    return server_error(request, template_name="errors/500.html")


def _page_403(request, exception=None):
    from django.views.defaults import permission_denied

    return permission_denied(request, exception, template_name="errors/403.html")


handler404 = _api_aware(_page_404, "not_found", "Not found.", 404)
handler500 = _api_aware(_page_500, "server_error", "Something went wrong on our side; it has been logged.", 500)
handler403 = _api_aware(_page_403, "permission_denied", "You do not have access to this.", 403)
