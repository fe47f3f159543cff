"""Screening an incoming X-ray with the input guard, and computing its 14 predictions.

They hold the rules of scoring (when an X-ray is pending, scoring, done or failed) in one place.
Scoring is claimed (status "scoring", with the process and the time) by a conditional UPDATE, so two
processes never score one X-ray at once, and one left scoring by a dead process is found again
(``diagnosis.intake.repair``).
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.utils import timezone

from diagnosis.intake import crashpoints, metrics, processes
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

    The X-ray is claimed first (unless this process holds the claim already, as ``store_xray(...,
    claim=True)`` leaves it): while one process scores it, no other does. Its predictions are
    replaced whole or not at all. With no active model it stays (or goes back to) pending
    (``manage.py rescore`` scores it later); a model that fails marks it failed with the reason.
    ``screening`` (from ``screen``) saves computing the pixels again. Returns the X-ray's new status:
    ``scoring`` when another live process is scoring it.
    """
    version = ModelVersion.active()
    if version is None:
        return _without_model(xray)
    previous = claim(xray)
    if previous is None:
        return xray.status
    crashpoints.reached(crashpoints.SCORING_CLAIMED)
    try:
        scores = _predict(version, xray, image, screening)
    except (ArtefactError, OSError, ValueError, RuntimeError) as exc:
        metrics.SCORING_FAILURES.inc()
        # By class only (a missing file's error names its path); the reason is kept on the X-ray.
        logger.error("Scoring X-ray %s with %s failed (%s)", xray.pk, version.name, type(exc).__name__)
        if _finish(xray, XRayStatus.FAILED, str(exc)[:2000]):
            xray.error = str(exc)
        return xray.status
    except BaseException:
        release(xray, previous)
        raise

    try:
        with transaction.atomic():
            # The status first: written only while the claim is still this process's, and it locks
            # the row, so a process taking the claim over meanwhile cannot write predictions too.
            if _finish(xray, XRayStatus.DONE, ""):
                xray.predictions.all().delete()
                Prediction.objects.bulk_create(_predictions(xray, version, scores))
    except BaseException:
        release(xray, previous)
        raise
    return xray.status


def _predictions(xray, version, scores):
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
    return rows


def _predict(version, xray, image, screening):
    predictor = predictor_for(version)
    if screening is not None and screening.version.pk == version.pk:
        with metrics.SCORING_SECONDS.time():
            return predictor.predict(pixels=screening.pixels)
    if image is None:
        with xray.image.open("rb") as handle:
            image = open_xray(handle.read())
    with metrics.SCORING_SECONDS.time():
        return predictor.predict(image)


def claim(xray):
    """Claim ``xray`` for scoring by this process, with one conditional UPDATE; returns the status
    to go back to if nothing gets written, or None when another live process holds the claim.

    Free to claim: an X-ray pending, failed or done (scored again), one this process holds, and one
    whose claimer is dead (``processes.is_dead``)."""
    me = processes.current()
    if xray.status == XRayStatus.SCORING and xray.scoring_by == me:
        # Claimed by this process when stored (``store_xray(..., claim=True)``); the final write
        # checks the claim again, so nothing is written if it was taken over meanwhile.
        return XRayStatus.PENDING
    for _ in range(3):  # the row changed between reading and updating it: read it again
        row = XRay.objects.filter(pk=xray.pk).values("status", "scoring_by", "scoring_since").first()
        if row is None:
            raise XRay.DoesNotExist(f"X-ray {xray.pk} is gone.")
        current = XRay.objects.filter(pk=xray.pk, status=row["status"])
        if row["status"] != XRayStatus.SCORING:
            previous = row["status"]
        elif row["scoring_by"] == me or processes.is_dead(row["scoring_by"], row["scoring_since"]):
            previous, current = XRayStatus.PENDING, current.filter(scoring_by=row["scoring_by"])
        else:
            xray.status, xray.scoring_by = XRayStatus.SCORING, row["scoring_by"]
            return None
        now = timezone.now()
        if current.update(status=XRayStatus.SCORING, scoring_by=me, scoring_since=now):
            xray.status, xray.scoring_by, xray.scoring_since = XRayStatus.SCORING, me, now
            return previous
    xray.status = XRayStatus.SCORING
    return None


def release(xray, status):
    """Give this process's claim on ``xray`` up, back to ``status``; nothing if the claim is gone."""
    _finish(xray, status, None)


def _finish(xray, status, error):
    """End this process's claim with ``status`` (and ``error`` unless None). False when the claim
    was no longer this process's: the row is left as it is, and ``xray`` reloaded from it."""
    fields = {"status": status, "scoring_by": "", "scoring_since": None}
    if error is not None:
        fields["error"] = error
    mine = XRay.objects.filter(pk=xray.pk, status=XRayStatus.SCORING, scoring_by=processes.current())
    if not mine.update(**fields):
        xray.refresh_from_db(fields=["status", "error", "scoring_by", "scoring_since"])
        return False
    for field, value in fields.items():
        setattr(xray, field, value)
    return True


def _without_model(xray):
    """No active model: an X-ray left scoring (by this process, or a dead one) goes back to pending;
    any other keeps its status."""
    if not XRay.objects.filter(pk=xray.pk, status=XRayStatus.SCORING).exists():
        return xray.status
    if claim(xray) is not None:
        _finish(xray, XRayStatus.PENDING, None)
    return xray.status


def heatmap_of(prediction):
    """The stored class activation map of a prediction as a float32 [h, w] array (or None)."""
    if not prediction.heatmap:
        return None
    return np.frombuffer(bytes(prediction.heatmap), dtype=np.float16).reshape(prediction.heatmap_shape).astype(
        np.float32
    )
