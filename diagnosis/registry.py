"""Registering model artefacts as ModelVersion rows, and choosing their operating point."""

import json

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from .artefact import read_metadata, resolve
from .findings import FINDINGS
from .models import ModelVersion, Prediction
from .reliability import check_specificity, load_holdout, operating_point
from .serving import METADATA_FILE


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


def set_operating_point(version, specificity, user=None):
    """Choose ``version``'s thresholds for ``specificity`` on its holdout scores, without retraining.

    The flags of the predictions it already made follow the new thresholds, and the change goes into
    the audit trail. Raises ``reliability.HoldoutError`` when the artefact has no usable holdout
    scores or the specificity is out of range. Returns the number of stored predictions re-flagged.
    """
    from . import audit

    specificity = check_specificity(specificity)
    directory = resolve(version.artefact_path)
    point = operating_point(*load_holdout(directory, read_metadata(directory)), specificity)
    previous = (version.operating_point or {}).get("target_specificity")
    with transaction.atomic():
        version.operating_point = point
        version.thresholds = {name: row["threshold"] for name, row in point["findings"].items()}
        version.save(update_fields=["operating_point", "thresholds"])
        changed = reflag(version)
        audit.record_model_change(
            user,
            version,
            f"operating point: target specificity {previous if previous is not None else 'none'} -> "
            f"{specificity:g}; {changed} stored prediction(s) re-flagged",
        )
    return changed


def reflag(version):
    """Make the stored flags of ``version``'s predictions follow its thresholds and reliability now
    (``ModelVersion.flags``, in SQL); returns how many predictions changed."""
    changed = 0
    for finding in FINDINGS:
        predictions = Prediction.objects.filter(model_version=version, finding=finding)
        should = Q(probability__gte=version.thresholds[finding]) if version.is_reliable(finding) else Q(pk__in=[])
        changed += predictions.filter(should, flagged=False).update(flagged=True)
        changed += predictions.exclude(should).filter(flagged=True).update(flagged=False)
    return changed
