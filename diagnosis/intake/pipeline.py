"""Receiving an uploaded X-ray: what the upload page and the API's upload endpoint both do.

``UploadForm`` is the one validator (file, patient, DICOM header checks); this module adds the
input guard, stores and scores the X-ray, and writes its audit events.
"""

from dataclasses import dataclass

from diagnosis.intake import metrics
from diagnosis.intake.scoring import score_xray, screen
from diagnosis.intake.storing import store_xray
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, XRay

GUARD_OVERRIDE_DETAIL = "input guard overridden: scored although it does not look like a frontal chest X-ray"


@dataclass(frozen=True)
class Received:
    """A stored X-ray and its status after scoring (``XRayStatus``: done, pending or failed)."""

    xray: XRay
    status: str


def receive_upload(request, form):
    """Validate the bound ``form`` (an ``UploadForm``), screen, store and score its X-ray.

    Returns ``Received``, or None when the upload is refused: the form then carries the errors
    (the guard's refusal as well, with ``form.offer_override`` set) and nothing is stored."""
    if not form.is_valid():
        metrics.count_refused_upload(form)
        return None
    screening = screen(form.cleaned_data["image"][1])
    overridden = screening is not None and not screening.accepted
    if overridden and not form.cleaned_data["score_anyway"]:
        form.refuse_as_not_chest_xray()
        metrics.count_refused_upload(form)
        return None
    xray = _store(request, form, overridden)
    metrics.count_stored_upload()
    return Received(xray, score_xray(xray, form.cleaned_data["image"][1], screening))


def _store(request, form, overridden):
    data, image, original_name = form.cleaned_data["image"]
    patient = form.chosen_patient()
    new_patient = patient.pk is None
    if new_patient:
        patient.created_by = request.user
    xray = store_xray(
        patient=patient,
        data=data,
        original_name=original_name,
        image=image,
        uploaded_by=request.user,
        view_position=form.chosen_view_position(),
        clinical_note=form.cleaned_data["clinical_note"],
        guard_overridden=overridden,
    )
    if new_patient:
        audit.record(request, AuditAction.CREATE, patient)
    audit.record(request, AuditAction.CREATE, xray, detail="uploaded " + original_name)
    if overridden:
        audit.record(request, AuditAction.CHANGE, xray, detail=GUARD_OVERRIDE_DETAIL)
    return xray
