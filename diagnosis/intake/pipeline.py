"""The one intake: what happens to an incoming X-ray, whatever the door (the upload page, the API,
the DICOM listener; ``score_again`` for rescoring).

The checks, in order, stopping at the first that refuses:

1. content: the file is there, within the size limit, and decodes as a chest X-ray image (PNG,
   JPEG, or DICOM whose header passes); a refusal of the file's content is the only one shown;
2. the door's own fields it could not read (``Incoming.unparsed``);
3. duplicate: a DICOM SOP Instance UID already stored;
4. patient: chosen, typed or named by the DICOM header (``patients.resolve``);
5. the input guard: an image unlike a frontal chest X-ray is refused unless staff confirm it
   (``score_anyway``; the DICOM listener cannot);
6. store (crash-safe, with its audit events in the row's transaction) and 7. score.

Every outcome is audited (stored: the patient if new, the X-ray, a guard override; refused: one
event with the reason) and counted in the upload metrics, alike at every door.
"""

from django.db import IntegrityError

from diagnosis.intake import dicom_records, metrics
from diagnosis.intake.content import Content, read_content
from diagnosis.intake.patients import Resolved, resolve
from diagnosis.intake.scoring import score_xray, screen
from diagnosis.intake.storing import store_xray
from diagnosis.intake.submissions import Outcome, Refusal
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, Source
from dispredo_core.guard import REFUSAL_MESSAGE

GUARD_OVERRIDE_DETAIL = "input guard overridden: scored although it does not look like a frontal chest X-ray"
NOT_STORED_MESSAGE = "The X-ray could not be stored."


def receive(incoming):
    """Check, store and score ``incoming`` (a ``submissions.Incoming``); returns an ``Outcome``."""
    content = read_content(incoming.upload)
    header = content.header
    if content.refusal is not None:
        return _refuse(incoming, [content.refusal], header)
    if incoming.unparsed:
        return _refuse(incoming, list(incoming.unparsed), header)
    duplicate = header and dicom_records.duplicate_message(header)
    if duplicate:
        return _refuse(incoming, [Refusal("duplicate_sop_instance", duplicate, "image")], header)
    resolved = resolve(incoming, header)
    if not isinstance(resolved, Resolved):
        return _refuse(incoming, resolved, header)
    screening = screen(content.image)
    overridden = screening is not None and not screening.accepted
    if overridden and not (incoming.score_anyway and incoming.source != Source.DICOM):
        refusal = Refusal("not_chest_xray", REFUSAL_MESSAGE, "image", offer_override=incoming.source != Source.DICOM)
        return _refuse(incoming, [refusal], header, resolved.patient)
    try:
        xray = _store(incoming, content, resolved, overridden)
    except IntegrityError:
        # Another request stored the same SOP instance, or registered the new patient, meanwhile.
        again = _after_a_lost_race(incoming, header, resolved)
        if not isinstance(again, Resolved):
            return _refuse(incoming, again, header)
        try:
            xray = _store(incoming, content, again, overridden)
        except IntegrityError:
            return _refuse(incoming, [Refusal("not_stored", NOT_STORED_MESSAGE)], header)
        resolved = again
    metrics.count_stored_upload()
    return Outcome(xray, score_xray(xray, content.image, screening), new_patient=resolved.new)


def score_again(xray, *, reason, user=None):
    """Score a stored X-ray again (``manage.py rescore``, the repair of interrupted uploads) and
    audit it on the X-ray; returns its new status."""
    status = score_xray(xray)
    audit.record_by(user, AuditAction.CHANGE, xray, detail=f"scored again ({reason}): {status}")
    return status


def _store(incoming, content, resolved, overridden):
    header = content.header

    def on_stored(xray, new_patient):  # in the transaction that stores the row
        if new_patient:
            audit.record_by(incoming.user, AuditAction.CREATE, xray.patient, f"registered from an X-ray received through {incoming.door}")
        audit.record_by(incoming.user, AuditAction.CREATE, xray, _received_detail(incoming, header))
        if overridden:
            audit.record_by(incoming.user, AuditAction.CHANGE, xray, GUARD_OVERRIDE_DETAIL)

    return store_xray(
        patient=resolved.patient,
        data=content.data,
        original_name=_name_of(incoming, header),
        image=content.image,
        uploaded_by=incoming.user,
        source=incoming.source,
        calling_ae_title=incoming.calling_ae_title,
        view_position=incoming.view_position or (header.view_position if header else ""),
        clinical_note=incoming.clinical_note,
        guard_overridden=overridden,
        claim=ModelVersion.objects.filter(is_active=True).exists(),
        on_stored=on_stored,
    )


def _name_of(incoming, header):
    """The name shown for the file: the uploaded one, or, for a received DICOM object, its SOP Instance UID."""
    if incoming.name:
        return incoming.name
    return f"{header.sop_instance_uid or 'received'}.dcm" if header is not None else "unnamed"


def _received_detail(incoming, header):
    detail = f"received through {incoming.door}: {_name_of(incoming, header)}"
    if incoming.source == Source.DICOM:
        detail += f" from AE {incoming.calling_ae_title or '?'}"
    return detail


def _after_a_lost_race(incoming, header, resolved):
    """After a constraint refused the row: the refusal it stands for, or, when the patient a DICOM
    header names was registered meanwhile, that patient (``Resolved``) to store the X-ray under."""
    duplicate = header and dicom_records.duplicate_message(header)
    if duplicate:
        return [Refusal("duplicate_sop_instance", duplicate, "image")]
    if resolved.new:
        again = resolve(incoming, header)
        if not isinstance(again, Resolved) or not again.new:
            return again
    return [Refusal("not_stored", NOT_STORED_MESSAGE)]


def _refuse(incoming, refusals, header=None, patient=None):
    """Audit and count a refusal; nothing is stored."""
    if patient is None:
        patient = incoming.patient or (dicom_records.existing_patient(header) if header is not None else None)
    mrn = (
        patient.mrn if patient is not None
        else incoming.new_patient.get("mrn") or (dicom_records.patient_id(header) if header else "")
    )
    reasons = "; ".join(f"{refusal.code}: {refusal.message}" for refusal in refusals)
    uid = f" (SOP Instance UID {header.sop_instance_uid})" if header is not None and header.sop_instance_uid else ""
    audit.record_refusal(incoming.user, patient if patient is not None and patient.pk else None, mrn,
                         f"{incoming.door}: {reasons}{uid}")
    metrics.count_refusal([refusal.code for refusal in refusals])
    return Outcome(refusals=tuple(refusals))


__all__ = ["Content", "Outcome", "Refusal", "receive", "score_again"]
