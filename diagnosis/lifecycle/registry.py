"""Registering model artefacts as ModelVersion rows, and keeping stored flags in step with a version."""

import json

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from diagnosis.lifecycle.models import ModelVersion
from dispredo_core.artefact import read_metadata, resolve
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import METADATA_FILE


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
        version, created = ModelVersion.objects.update_or_create(
            name=name or metadata["name"],
            defaults={
                "artefact_path": location,
                "thresholds": {k: float(v) for k, v in metadata["thresholds"].items()},
                "metrics": metadata.get("metrics", {}),
                "reliability": metadata.get("reliability") or {},
                "operating_point": metadata.get("operating_point") or {},
            },
        )
        if not created:
            # Re-registered (e.g. the shipped default after an upgrade): its past flags follow it.
            reflag(version)
        if activate:
            version.activate()
    return version


def install_default_model():
    """Register the shipped default model; activate it when no version is active.

    Returns the version, or None when the repository has no default model.
    """
    directory = settings.DISPREDO_DEFAULT_MODEL_DIR
    if not (directory / METADATA_FILE).is_file():
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


def reflag(version):
    """Make the stored flags of ``version``'s predictions follow its thresholds and reliability now
    (``ModelVersion.flags``, in SQL); returns how many predictions changed."""
    changed = 0
    for finding in FINDINGS:
        predictions = version.predictions.filter(finding=finding)
        should = Q(probability__gte=version.thresholds[finding]) if version.is_reliable(finding) else Q(pk__in=[])
        changed += predictions.filter(should, flagged=False).update(flagged=True)
        changed += predictions.exclude(should).filter(flagged=True).update(flagged=False)
    return changed
