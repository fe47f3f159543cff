"""Storing an incoming X-ray, crash-safe: its file and its row, never one without the other.

The order makes a process killed at any instant repairable (``diagnosis.intake.repair``):

1. an ``IncomingFile`` row naming the file about to be written, by this process, is committed;
2. the file is written through the X-ray storage (and synced to disk when the storage is local);
3. one transaction saves the patient if new, the X-ray row and the caller's audit events
   (``on_stored``), and deletes the journal row.

Killed before 3 commits, the journal row remains and names a file no row uses: the repair removes
both once the writer is dead. Killed after, the X-ray and its file are both there. The journal row
is only committed on its own when ``store_xray`` runs outside a transaction (as every door calls it).
"""

import logging
import os
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from diagnosis.intake import crashpoints, dicom_records, processes
from diagnosis.intake.models import IncomingFile
from diagnosis.records.models import XRay, XRayStatus
from diagnosis.storage import xrays as xray_files

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "DICOM": ".dcm"}


def store_xray(
    *, patient, data, original_name, image, uploaded_by, source="", calling_ae_title="", view_position="",
    clinical_note="", guard_overridden=False, claim=False, on_stored=None,
):
    """Store the X-ray ``data`` (decoded as ``image``) of ``patient`` (saved here if new) and
    return its ``XRay``.

    ``on_stored(xray, new_patient)`` runs inside the row's transaction, so what it writes (the audit
    events) is committed with the row or not at all. With ``claim=True`` the row is saved as being
    scored by this process, which then scores it at once (``score_xray``). On any exception the file
    and the journal row are removed, nothing else is left, and the exception goes on. DICOM is
    stored as received (.dcm) with its study fields from the header."""
    header = dicom_records.header_of(image)
    xray = XRay(
        **(dicom_records.study_fields(header) if header else {}),
        patient=patient,
        original_name=original_name[:255],
        sha256=XRay.digest(data),
        width=image.width,
        height=image.height,
        uploaded_by=uploaded_by,
        source=source,
        calling_ae_title=calling_ae_title[:16],
        view_position=view_position,
        clinical_note=clinical_note,
        guard_overridden=guard_overridden,
    )
    if claim:
        xray.status, xray.scoring_by, xray.scoring_since = XRayStatus.SCORING, processes.current(), timezone.now()
    storage = xray.image.storage
    name = xray.image.field.generate_filename(xray, "upload" + SUFFIXES.get(image.format, ".img"))
    journal = IncomingFile.objects.create(name=name, writer=processes.current())
    crashpoints.reached(crashpoints.JOURNAL_COMMITTED)
    new_patient = patient.pk is None
    try:
        xray.image = _write(storage, name, data)
        if xray.image.name != name:  # the storage chose another name (it never should: they are random)
            IncomingFile.objects.filter(pk=journal.pk).update(name=xray.image.name)
        crashpoints.reached(crashpoints.FILE_WRITTEN)
        with transaction.atomic():
            if new_patient:
                patient.save()
                xray.patient = patient
            xray.save()
            if on_stored is not None:
                on_stored(xray, new_patient)
            IncomingFile.objects.filter(pk=journal.pk).delete()
            crashpoints.reached(crashpoints.ROW_INSERTED)
    except BaseException:
        _discard(storage, xray.image.name or name, journal)
        xray.pk = None
        if new_patient:  # rolled back: the object is new again, as the caller gave it
            patient.pk = None
            patient._state.adding = True
        raise
    crashpoints.reached(crashpoints.ROW_COMMITTED)
    return xray


class _Chunks(ContentFile):
    """The upload's bytes, handed to the storage ``CHUNK_BYTES`` at a time (the crash tests kill
    the writer after the first chunk, leaving a partial file)."""

    def chunks(self, chunk_size=None):
        for number, chunk in enumerate(super().chunks(CHUNK_BYTES)):
            yield chunk
            if number == 0:  # the storage has written the first chunk when it asks for the next
                crashpoints.reached(crashpoints.FILE_PARTLY_WRITTEN)


def _write(storage, name, data):
    """Write ``data`` as ``name``; returns the name stored. A local file, and each folder made for
    it, are synced to disk before the row that names the file can be committed."""
    if not xray_files.is_local(storage):
        return storage.save(name, _Chunks(data))
    path = Path(storage.path(name))
    new_folders = [folder for folder in path.parents if not folder.exists()]
    saved = storage.save(name, _Chunks(data))
    path = Path(storage.path(saved))
    for synced in (path, path.parent, *(folder.parent for folder in new_folders)):
        _fsync(synced)
    return saved


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _discard(storage, name, journal):
    """Remove the file of a failed store, then its journal row; what cannot be removed now (the
    store or the database unreachable) stays journaled for the repair, logged without its name."""
    try:
        storage.delete(name)
    except Exception as exc:
        logger.error("Removing the file of an upload that failed failed too (%s); the repair removes it", type(exc).__name__)
        return
    try:
        IncomingFile.objects.filter(pk=journal.pk).delete()
    except Exception as exc:
        logger.error("Removing the journal row of an upload that failed failed too (%s)", type(exc).__name__)
