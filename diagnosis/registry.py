"""Registering model artefacts as ModelVersion rows."""

import json

from django.conf import settings
from django.db import transaction

from .artefact import read_metadata, resolve
from .models import ModelVersion


def relative_location(directory):
    """Store paths inside the project relative to it, so a moved checkout keeps working."""
    directory = resolve(directory).resolve()
    try:
        return str(directory.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(directory)


def register_model_version(directory, *, activate=False, name=None):
    """The ModelVersion for the finished artefact in ``directory`` (created if new).

    Reads and validates the artefact first, so a half-written directory is never registered.
    """
    metadata = read_metadata(directory)
    location = relative_location(directory)
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=name or metadata["name"],
            defaults={
                "artefact_path": location,
                "thresholds": {k: float(v) for k, v in metadata["thresholds"].items()},
                "metrics": metadata.get("metrics", {}),
            },
        )
        if activate:
            version.activate()
    return version


def install_default_model():
    """Register the shipped default model; activate it when no version is active.

    Returns the version, or None when the repository has no default model.
    """
    directory = settings.DISPREDO_DEFAULT_MODEL_DIR
    if not (directory / "metadata.json").is_file():
        return None
    version = register_model_version(directory, activate=not ModelVersion.objects.filter(is_active=True).exists())
    # The shipped model comes evaluated: show its reports on the admin page as evaluate would.
    reports = {}
    for report in sorted(directory.glob("evaluation_*.json")):
        reports[report.stem.removeprefix("evaluation_")] = json.loads(report.read_text())
    if reports and reports != version.evaluation:
        version.evaluation = reports
        version.save(update_fields=["evaluation"])
    return version
