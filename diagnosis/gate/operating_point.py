"""Choosing a model version's operating point after training: its thresholds for a target
specificity on its holdout scores (``manage.py operating_point``, the admin)."""

from django.db import transaction

from diagnosis.lifecycle.registry import reflag
from diagnosis.records import audit
from dispredo_core.artefact import read_metadata, resolve
from dispredo_core.reliability import check_specificity, load_holdout, operating_point


def set_operating_point(version, specificity, user=None):
    """Choose ``version``'s thresholds for ``specificity`` on its holdout scores, without retraining.

    The flags of the predictions it already made follow the new thresholds, and the change goes into
    the audit trail. Raises ``reliability.HoldoutError`` when the artefact has no usable holdout
    scores or the specificity is out of range. Returns the number of stored predictions re-flagged.
    """
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
