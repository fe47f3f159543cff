"""Screening an incoming X-ray with the input guard, and computing its 14 predictions.

They hold the rules of scoring (when an X-ray is pending, done or failed) in one place.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from diagnosis.intake import metrics
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.predictors import predictor_for
from diagnosis.records.models import Prediction, XRay, XRayStatus
from dispredo_core.artefact import ArtefactError
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import open_xray

logger = logging.getLogger(__name__)


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
