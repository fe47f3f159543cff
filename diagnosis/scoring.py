"""Storing an uploaded X-ray and computing its 14 predictions.

Views and commands call these functions; they hold the rules (what is stored, when an
X-ray is pending, done or failed) in one place.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from dispredo_site.observability import metrics

from . import dicom_records
from .artefact import ArtefactError
from .findings import FINDINGS
from .imaging import open_xray
from .inference import predictor_for
from .models import ModelVersion, Prediction, XRay, XRayStatus

logger = logging.getLogger(__name__)


def store_xray(
    *, patient, data, original_name, image, uploaded_by, view_position="", clinical_note="", guard_overridden=False
):
    """Save the file and its row together: if either fails, neither is left behind.

    DICOM is stored as received (.dcm) with its study fields from the header."""
    header = dicom_records.header_of(image)
    xray = XRay(
        **(dicom_records.study_fields(header) if header else {}),
        patient=patient,
        original_name=original_name[:255],
        sha256=XRay.digest(data),
        width=image.width,
        height=image.height,
        uploaded_by=uploaded_by,
        view_position=view_position,
        clinical_note=clinical_note,
        guard_overridden=guard_overridden,
    )
    suffix = {"PNG": ".png", "JPEG": ".jpg", "DICOM": ".dcm"}.get(image.format, ".img")
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


@dataclass(frozen=True)
class Screening:
    """An image's model pixels for ``version`` and whether its input guard accepts them."""

    version: ModelVersion
    pixels: np.ndarray
    accepted: bool


def screen(image):
    """Run the active model's input guard on a PIL ``image`` before anything is stored.

    None when there is nothing to screen with (no active model, or one that cannot load: scoring
    then leaves the X-ray pending or failed, with the reason)."""
    version = ModelVersion.active()
    if version is None:
        return None
    try:
        predictor = predictor_for(version)
        pixels = predictor.pixels(image)
    except (ArtefactError, OSError, ValueError):
        return None
    return Screening(version, pixels, predictor.accepts(pixels))


def score_xray(xray, image=None, screening=None):
    """Compute and store the 14 predictions of ``xray`` with the active model.

    With no active model the X-ray stays pending (``manage.py rescore`` scores it later);
    a model that fails marks it failed with the reason. ``screening`` (from ``screen``) saves
    computing the pixels again. Returns the X-ray's new status.
    """
    version = ModelVersion.active()
    if version is None:
        return xray.status
    try:
        predictor = predictor_for(version)
        if screening is not None and screening.version.pk == version.pk:
            with metrics.SCORING_SECONDS.time():
                scores = predictor.predict(pixels=screening.pixels)
        else:
            if image is None:
                with xray.image.open("rb") as handle:
                    image = open_xray(handle.read())
            with metrics.SCORING_SECONDS.time():
                scores = predictor.predict(image)
    except (ArtefactError, OSError, ValueError, RuntimeError) as exc:
        metrics.SCORING_FAILURES.inc()
        # By class only (a missing file's error names its path); the reason is kept on the X-ray.
        logger.error("Scoring X-ray %s with %s failed (%s)", xray.pk, version.name, type(exc).__name__)
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
                flagged=version.flags(finding, probability),
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
