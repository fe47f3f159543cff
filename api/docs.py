"""Interactive API docs (Swagger UI) for staff, from local static files (drf-spectacular-sidecar).

The page is the split variant, whose start-up script is a separate request, so no inline script is
needed; our template also moves its inline style into a static file."""

from drf_spectacular.views import SpectacularSwaggerSplitView

from diagnosis.records.access import staff_required

# A browser: anonymous users are sent to sign in, others refused, as on every page.
docs = staff_required(
    SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html")
)
