"""What an X-ray shows, computed once: every view (the X-ray page, the patient's page, the worklist,
the report, the API and FHIR) renders this object and computes nothing of its own.

``result_of(xray)`` gives one ``Result``; ``results_of(xrays)`` gives a page of them with one query
for the predictions and one for the model versions they name (the active version among them).

A result holds scores only when the X-ray's last scoring succeeded (status done) and left one
prediction per finding from one model version: after a failed rescoring the earlier rows stay
stored for the record, but they are not the X-ray's result. Flags are those of reliable findings
only. Caveats say what staff must know before reading the scores, or why there are none.
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

from django.db.models import Q
from django.utils import timezone

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records.caveats import (
    CAVEAT_CODES,
    IMAGE_CAVEATS,
    UNRELIABLE_FINDINGS,
    Caveat,
    caveats_of,
)
from diagnosis.records.models import Prediction, Source, XRayStatus
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS

__all__ = ["CAVEAT_CODES", "Caveat", "Door", "FindingResult", "Result", "result_of", "results_of", "scale_position"]

# Scores and thresholds are mostly a few per cent: bars use a log scale from 0.1 % to 100 %, so
# that a threshold of 2 % and one of 10 % are far enough apart to see.
SCALE_DECADES = 3


def scale_position(probability):
    """Where ``probability`` sits on the bars' log scale, in per cent of the bar's width."""
    clipped = min(max(float(probability), 10.0**-SCALE_DECADES), 1.0)
    return round((math.log10(clipped) + SCALE_DECADES) / SCALE_DECADES * 100, 1)


@dataclass(frozen=True)
class FindingResult:
    """One finding's score, threshold, flag and reliability, as every view shows them."""

    finding: str
    probability: float
    threshold: float
    flagged: bool
    reliable: bool
    reliability: dict  # AUROC on unseen patients, its interval, positives (empty if not measured)
    operating_point: dict  # expected sensitivity and specificity at the threshold (empty if not measured)
    # The stored row, for its class activation map (loaded only when asked for).
    prediction: Prediction = field(compare=False, repr=False)

    @property
    def display_name(self):
        return DISPLAY_NAMES[self.finding]

    @property
    def percent(self):
        return round(self.probability * 100, 1)

    @property
    def threshold_percent(self):
        return round(self.threshold * 100, 1)

    @property
    def bar_position(self):
        return scale_position(self.probability)

    @property
    def marker_position(self):
        return scale_position(self.threshold)

    @property
    def state(self):
        """The row's class on the pages: "flagged", "unreliable" or ""."""
        return "flagged" if self.flagged else "" if self.reliable else "unreliable"


@dataclass(frozen=True)
class Door:
    """The door an X-ray came in by: ``code`` (``Source``, "" for X-rays stored before it was
    recorded), the words for it, and the sending DICOM AE title where it came by DICOM."""

    code: str
    calling_ae_title: str = ""

    @property
    def label(self):
        if not self.code:
            return "not recorded"
        name = Source(self.code).label if self.code in Source.values else self.code
        return f"{name} (AE {self.calling_ae_title})" if self.calling_ae_title else name


@dataclass(frozen=True)
class Result:
    """What an X-ray shows (see the module docstring); lists are computed on first use."""

    xray_id: int
    status: str
    findings: tuple  # FindingResult in FINDINGS order; empty unless scored
    model_version: ModelVersion | None  # the version that scored it; None unless scored
    caveats: tuple  # Caveat, in CAVEAT_CODES order
    study_date: date  # the DICOM study date, else the upload date
    study_date_is_upload: bool
    uploaded_at: datetime
    source: Door

    @property
    def scored(self):
        return bool(self.findings)

    @cached_property
    def flagged(self):
        """The flagged findings, strongest first."""
        return sorted((f for f in self.findings if f.flagged), key=lambda f: -f.probability)

    @cached_property
    def ranked(self):
        """Reliable findings first, each group from the highest score to the lowest."""
        return sorted(self.findings, key=lambda f: (not f.reliable, -f.probability))

    @cached_property
    def reliable(self):
        """The reliable findings, from the highest score to the lowest."""
        return [f for f in self.ranked if f.reliable]

    @cached_property
    def status_caveat(self):
        """The caveat that says why there are no scores (None when scored)."""
        return next((c for c in self.caveats if c.is_status), None)

    @cached_property
    def image_caveats(self):
        """The guard override and low resolution: what concerns the image itself."""
        return [c for c in self.caveats if c.code in IMAGE_CAVEATS]

    @property
    def model_caveat(self):
        """The findings not reliable with the model version that scored it (None when all are)."""
        return self.caveat(UNRELIABLE_FINDINGS)

    def caveat(self, code):
        return next((c for c in self.caveats if c.code == code), None)


def result_of(xray, *, heatmaps=False):
    """The ``Result`` of one X-ray; ``heatmaps`` loads the class activation maps with the predictions."""
    return results_of([xray], heatmaps=heatmaps)[0]


def results_of(xrays, *, heatmaps=False):
    """The ``Result`` of each of ``xrays`` (a page of them), in their order: one query for their
    predictions, one for the model versions those name and the active version."""
    xrays = list(xrays)
    predictions = Prediction.objects.filter(xray__in=[x.pk for x in xrays]).order_by()
    if not heatmaps:
        predictions = predictions.defer("heatmap", "heatmap_shape")
    by_xray = {}
    for prediction in predictions:
        by_xray.setdefault(prediction.xray_id, []).append(prediction)
    named = {p.model_version_id for rows in by_xray.values() for p in rows}
    versions = {v.pk: v for v in ModelVersion.objects.filter(Q(pk__in=named) | Q(is_active=True))}
    active = next((v for v in versions.values() if v.is_active), None)
    return [_result(xray, by_xray.get(xray.pk, []), versions, active) for xray in xrays]


def _result(xray, predictions, versions, active):
    version, findings = None, ()
    if xray.status == XRayStatus.DONE and _one_per_finding_from_one_version(predictions):
        version = versions[predictions[0].model_version_id]
        by_name = {p.finding: p for p in predictions}
        findings = tuple(_finding(by_name[name], version) for name in FINDINGS)
    if xray.study_date:
        study_date, from_upload = xray.study_date, False
    else:
        study_date, from_upload = timezone.localdate(xray.uploaded_at), True
    return Result(
        xray_id=xray.pk,
        status=xray.status,
        findings=findings,
        model_version=version,
        caveats=tuple(caveats_of(xray, findings, version, bool(predictions), active)),
        study_date=study_date,
        study_date_is_upload=from_upload,
        uploaded_at=xray.uploaded_at,
        source=Door(xray.source, xray.calling_ae_title),
    )


def _one_per_finding_from_one_version(predictions):
    return (
        len(predictions) == len(FINDINGS)
        and {p.finding for p in predictions} == set(FINDINGS)
        and len({p.model_version_id for p in predictions}) == 1
    )


def _finding(prediction, version):
    reliable = version.is_reliable(prediction.finding)
    return FindingResult(
        finding=prediction.finding,
        probability=prediction.probability,
        threshold=float(version.thresholds[prediction.finding]),
        # The stored flag (re-set when the operating point changes), and never for an unreliable finding.
        flagged=bool(prediction.flagged) and reliable,
        reliable=reliable,
        reliability=version.finding_reliability(prediction.finding),
        operating_point=(version.operating_point or {}).get("findings", {}).get(prediction.finding, {}),
        prediction=prediction,
    )
