"""The DICOM listener: a C-STORE SCP, one of the intake's doors.

``receive`` hands one received object to the intake (``diagnosis.intake.pipeline``), which checks,
stores, scores and audits it as it does an upload, and turns the outcome into the DIMSE status sent
back. ``start_listener`` runs the SCP (C-STORE and C-ECHO); ``manage.py dicom_listener`` only calls it.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connections
from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from diagnosis.intake import pipeline
from diagnosis.intake.submissions import Incoming
from diagnosis.records.models import Source, XRay

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
# Refused: "Data Set does not match SOP Class" (not a chest radiograph, already stored, no patient).
REFUSED = 0xA900
# Refused: "Cannot understand" (damaged or not a readable image).
CANNOT_UNDERSTAND = 0xC000
# Refused: "Out of resources" (the object could not be stored).
OUT_OF_RESOURCES = 0xA700
# The intake's refusal codes that are not 0xA900.
STATUS_OF_REFUSAL = {"invalid_image": CANNOT_UNDERSTAND, "dicom_unreadable": CANNOT_UNDERSTAND, "not_stored": OUT_OF_RESOURCES}


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
    """Store and score the DICOM Part 10 bytes ``data`` sent by ``calling_ae`` through the intake,
    or refuse them. Returns a ``Received``."""
    incoming = Incoming(upload=data, name="", source=Source.DICOM, user=receiver_user(), calling_ae_title=calling_ae)
    outcome = pipeline.receive(incoming)
    if outcome.stored:
        return Received(SUCCESS, f"Stored as X-ray {outcome.xray.pk}.", outcome.xray)
    refusal = outcome.refusals[0]
    status = STATUS_OF_REFUSAL.get(refusal.code, REFUSED)
    # The message can name a patient (an object already stored): it goes to the audit trail only.
    logger.info("Refused a DICOM object from %s (status 0x%04X); the reason is in the audit trail", calling_ae, status)
    return Received(status, refusal.message)


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
