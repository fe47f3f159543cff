from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API over the diagnosis app: tokens, patients, X-rays, and the OpenAPI schema."""

    name = "api"
    verbose_name = "REST API"

    def ready(self):
        # Registers the token scheme with drf-spectacular, so the schema documents it.
        from . import schema  # noqa: F401
