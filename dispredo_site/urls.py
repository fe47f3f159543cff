from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from dispredo_site.observability import views as observability

admin.site.site_header = "Dispredo administration"
admin.site.site_title = "Dispredo admin"


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG, signed in or not."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    # For load balancers and Prometheus: no sign-in (the metrics need a token or loopback).
    path("healthz", observability.healthz, name="healthz"),
    path("metrics", observability.metrics_view, name="metrics"),
    path("api/", include("api.urls")),
    path("", include("diagnosis.urls")),
]
