from django.apps import AppConfig


class MltrainConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "mltrain"
    verbose_name = "Model training"
