"""The DICOM listener: a C-STORE SCP that stores and scores received chest X-rays like uploads.

``receive`` handles one received object with the upload's own functions (``open_xray``'s checks,
the input guard ``screen``, ``store_xray``, ``score_xray``) and audits it, stored or refused.
``start_listener`` runs the SCP (C-STORE and C-ECHO); ``manage.py dicom_listener`` only calls it.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, close_old_connections, connections
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from diagnosis.intake import dicom_records
from diagnosis.intake.scoring import score_xray, screen
from diagnosis.intake.storing import store_xray
from diagnosis.records import audit
from diagnosis.records.models import Patient, XRay
from dispredo_core import dicom
from dispredo_core.guard import REFUSAL_MESSAGE
from dispredo_core.imaging import InvalidImage, RefusedDicom, open_xray

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
# Refused: "Data Set does not match SOP Class" (not a chest radiograph, or already stored).
REFUSED = 0xA900
# Refused: "Cannot understand" (damaged or not a readable image).
CANNOT_UNDERSTAND = 0xC000
# Refused: "Out of resources" (the object could not be stored).
OUT_OF_RESOURCES = 0xA700

NOT_AN_IMAGE_MESSAGE = "This DICOM object is not a readable image."


@dataclass(frozen=True)
class Received:
    """What became of one received object: the DIMSE status sent back, a message, the X-ray if stored."""

    status: int
    message: str
    xray: XRay | None = None


def receiver_user():
    """The system user received X-rays are stored under; created without a usable password, so
    nobody signs in as it."""
    user, created = get_user_model().objects.get_or_create(username=settings.DISPREDO_DICOM_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def receive(data, calling_ae):
    """Store and score the DICOM Part 10 bytes ``data`` sent by ``calling_ae``, or refuse them; the
    outcome is audited either way. Returns a ``Received``."""
    user = receiver_user()
    try:
        image = open_xray(data)
    except RefusedDicom as refusal:
        code = CANNOT_UNDERSTAND if refusal.code == "dicom_unreadable" else REFUSED
        return _refuse(user, calling_ae, data, code, refusal.message)
    except InvalidImage:
        return _refuse(user, calling_ae, data, CANNOT_UNDERSTAND, NOT_AN_IMAGE_MESSAGE)
    header = dicom_records.header_of(image)
    if header is None:  # a PNG or JPEG wrapped as a dataset would not come this way; be safe
        return _refuse(user, calling_ae, data, CANNOT_UNDERSTAND, NOT_AN_IMAGE_MESSAGE)
    duplicate = dicom_records.duplicate_message(header)
    if duplicate:
        return _refuse(user, calling_ae, data, REFUSED, duplicate, header)
    screening = screen(image)
    if screening is not None and not screening.accepted:
        return _refuse(user, calling_ae, data, REFUSED, REFUSAL_MESSAGE, header)
    patient = dicom_records.existing_patient(header) or _new_patient(header, user)
    if patient is None:
        return _refuse(user, calling_ae, data, REFUSED, "This DICOM image has no Patient ID.", header)
    try:
        xray = store_xray(
            patient=patient,
            data=data,
            original_name=f"{header.sop_instance_uid or 'received'}.dcm",
            image=image,
            uploaded_by=user,
            view_position=header.view_position,
            clinical_note=f"Received from DICOM AE {calling_ae}.",
        )
    except IntegrityError as exc:  # the same SOP Instance UID stored meanwhile by another association
        # By class only: PostgreSQL's message quotes the clashing values (a record number, a UID).
        logger.error("Storing a DICOM object from %s failed (%s)", calling_ae, type(exc).__name__)
        return _refuse(user, calling_ae, data, OUT_OF_RESOURCES, "The X-ray could not be stored.", header)
    status = score_xray(xray, image, screening)
    audit.record_dicom(user, calling_ae, outcome=f"stored as X-ray {xray.pk}, {status}", xray=xray, sop_instance_uid=header.sop_instance_uid)
    return Received(SUCCESS, f"Stored as X-ray {xray.pk}.", xray)


def _new_patient(header, user):
    fields = dicom_records.new_patient_fields(header)
    if not fields["mrn"]:
        return None
    return Patient(created_by=user, **fields)


def _refuse(user, calling_ae, data, status, message, header=None):
    """Audit a refusal; nothing is stored. The header is read for the audit when not at hand."""
    if header is None:
        header = _header_only(data)
    audit.record_dicom(
        user,
        calling_ae,
        outcome=f"refused: {message}",
        patient_mrn=dicom_records.normalised_id(header) if header else "",
        sop_instance_uid=header.sop_instance_uid if header else "",
    )
    # The message can name a patient (an object already stored): it goes to the audit trail only.
    logger.info("Refused a DICOM object from %s (status 0x%04X); the reason is in the audit trail", calling_ae, status)
    return Received(status, message)


def _header_only(data):
    try:
        dataset = dicom.parse(data)
    except dicom.DicomRefused:
        return None
    return dicom.header_of(dataset) if dataset is not None else None


def handle_store(event):
    """pynetdicom's C-STORE handler: the received dataset, re-encoded as a Part 10 file, to ``receive``."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    close_old_connections()
    try:
        received = receive(event.encoded_dataset(), calling_ae)
        return received.status
    except Exception:  # an SCP thread must answer, whatever happened
        logger.exception("Receiving a DICOM object from %s failed", calling_ae)
        return OUT_OF_RESOURCES
    finally:
        # Each association has its own thread, gone after it: a connection kept for reuse
        # (CONN_MAX_AGE) would linger unused, a PostgreSQL server process each, until collected.
        connections.close_all()


def handle_echo(event):
    return SUCCESS


def build_ae(ae_title=None, calling_ae_titles=None):
    """The application entity: storage of every SOP class in every transfer syntax, and Verification."""
    ae = AE(ae_title=ae_title or settings.DISPREDO_DICOM_AE_TITLE)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    allowed = settings.DISPREDO_DICOM_CALLING_AE_TITLES if calling_ae_titles is None else calling_ae_titles
    ae.require_calling_aet = list(allowed)
    return ae


def start_listener(*, bind=None, port=None, ae_title=None, calling_ae_titles=None, block=True):
    """Run the SCP on ``bind``:``port`` (settings by default). With ``block=False`` it runs in
    threads and the server is returned (``server.shutdown()`` stops it)."""
    ae = build_ae(ae_title, calling_ae_titles)
    address = (bind or settings.DISPREDO_DICOM_BIND, settings.DISPREDO_DICOM_PORT if port is None else port)
    handlers = [(evt.EVT_C_STORE, handle_store), (evt.EVT_C_ECHO, handle_echo)]
    return ae.start_server(address, block=block, evt_handlers=handlers)
