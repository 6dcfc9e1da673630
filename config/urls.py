from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from config import health

# JSON 404s under /api/ for paths no route matches (Django's HTML page otherwise).
handler404 = "config.api_errors.not_found"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # Both pages load only our /static/ (drf-spectacular-sidecar) and no inline script (the split view
    # serves Swagger UI's settings as a script of its own), so a same-origin CSP allows them.
    path(
        "api/v1/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    path("api/v1/", include("catalog.api.urls")),
    path("api/v1/", include("search.api.urls")),
    path("", include("search.web.urls")),
]


def media(request, path: str):
    # MEDIA_ROOT is read per request, not frozen when this module is imported.
    return serve(request, path, document_root=str(settings.MEDIA_ROOT))


# The embedded default serves uploaded media itself; production serves MEDIA_ROOT from the proxy.
if settings.DEBUG or not getattr(settings, "SERVE_MEDIA_FROM_PROXY", False):
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", media, name="media")]
