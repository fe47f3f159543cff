from django.apps import AppConfig
from django.core.signals import setting_changed


class DiagnosisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnosis"
    verbose_name = "Diagnosis"

    def ready(self):
        # No model loading here: ready() runs for every management command, migrate included.
        from django.conf import settings

        from dispredo_core import image_limits

        image_limits.configure(settings.DISPREDO_MAX_IMAGE_BYTES)
        setting_changed.connect(_follow_image_limit, dispatch_uid="diagnosis.image_limit")


def _follow_image_limit(*, setting, value, **kwargs):
    """Tests change DISPREDO_MAX_IMAGE_BYTES with override_settings: the decode limit follows."""
    if setting == "DISPREDO_MAX_IMAGE_BYTES":
        from dispredo_core import image_limits

        image_limits.configure(value if value is not None else image_limits.DEFAULT_MAX_IMAGE_BYTES)
