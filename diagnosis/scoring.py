"""Storing an uploaded X-ray and computing its 14 predictions.

Views and commands call these functions; they hold the rules (what is stored, when an
X-ray is pending, done or failed) in one place.
"""

import logging

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from .artefact import ArtefactError
from .findings import FINDINGS
from .imaging import open_xray
from .inference import predictor_for
from .models import ModelVersion, Prediction, XRay, XRayStatus

logger = logging.getLogger(__name__)


def store_xray(*, patient, data, original_name, image, uploaded_by, view_position="", clinical_note=""):
    """Save the file and its row together: if either fails, neither is left behind."""
    xray = XRay(
        patient=patient,
        original_name=original_name[:255],
        sha256=XRay.digest(data),
        width=image.width,
        height=image.height,
        uploaded_by=uploaded_by,
        view_position=view_position,
        clinical_note=clinical_note,
    )
    suffix = {"PNG": ".png", "JPEG": ".jpg"}.get(image.format, ".img")
    xray.image.save(f"upload{suffix}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            if patient.pk is None:
                patient.save()
                xray.patient = patient
            xray.save()
    except BaseException:
        xray.image.storage.delete(xray.image.name)
        raise
    return xray


def score_xray(xray, image=None):
    """Compute and store the 14 predictions of ``xray`` with the active model.

    With no active model the X-ray stays pending (``manage.py rescore`` scores it later);
    a model that fails marks it failed with the reason. Returns the X-ray's new status.
    """
    version = ModelVersion.active()
    if version is None:
        return xray.status
    try:
        predictor = predictor_for(version)
        if image is None:
            with xray.image.open("rb") as handle:
                image = open_xray(handle.read())
        scores = predictor.predict(image)
    except (ArtefactError, OSError, ValueError, RuntimeError) as exc:
        logger.exception("Scoring X-ray %s with %s failed", xray.pk, version.name)
        XRay.objects.filter(pk=xray.pk).update(status=XRayStatus.FAILED, error=str(exc)[:2000])
        xray.status, xray.error = XRayStatus.FAILED, str(exc)
        return xray.status

    rows = []
    for index, finding in enumerate(FINDINGS):
        probability = float(scores.probabilities[index])
        cam = scores.cams[..., index].astype(np.float16)
        rows.append(
            Prediction(
                xray=xray,
                finding=finding,
                probability=probability,
                flagged=probability >= float(version.thresholds[finding]),
                model_version=version,
                heatmap=cam.tobytes(),
                heatmap_shape=list(cam.shape),
            )
        )
    with transaction.atomic():
        xray.predictions.all().delete()
        Prediction.objects.bulk_create(rows)
        XRay.objects.filter(pk=xray.pk).update(status=XRayStatus.DONE, error="")
    xray.status, xray.error = XRayStatus.DONE, ""
    return xray.status


def heatmap_of(prediction):
    """The stored class activation map of a prediction as a float32 [h, w] array (or None)."""
    if not prediction.heatmap:
        return None
    return np.frombuffer(bytes(prediction.heatmap), dtype=np.float16).reshape(prediction.heatmap_shape).astype(
        np.float32
    )
