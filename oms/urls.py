from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny, IsAuthenticated

from .api_urls import router
from .api_urls import urlpatterns as api_v1_patterns
from .views import healthz, livez

handler404 = "oms.views.not_found"

docs_permission = [AllowAny] if settings.OMS_PUBLIC_API_DOCS else [IsAuthenticated]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("livez", livez, name="livez"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("cs/", include("orders.urls")),
    path("inventory/", include("inventory.urls")),
    path("finance/", include("reconciliation.urls")),
    path("ops/", include("alerts.urls")),
    path("sandbox/", include("channels.sandbox.urls")),
    path("api/v1/", include((api_v1_patterns + router.urls, "api"), namespace="api")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=docs_permission),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=docs_permission),
        name="api-docs",
    ),
]
