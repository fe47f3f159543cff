"""The repair of uploads interrupted by a process that died (killed, out of memory, power lost).

What a dead process can leave (see ``storing`` and ``scoring``):

- a journal row (``IncomingFile``) and a partial, whole or absent file that no X-ray row names:
  the file and the row are removed;
- an X-ray "scoring" whose claimer is dead, or "pending" while a model is active: it is scored
  again (``score_xray``, which takes a dead process's claim over).

Only rows of dead processes are touched (``processes.is_dead``), so the repair is safe to run at
any time and several at once: at start-up (bin/start, the DICOM listener), after a gunicorn worker
exits (``dispredo_site.gunicorn_conf``), and by ``manage.py repair_uploads``. Each step is audited.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from diagnosis.intake import processes
from diagnosis.intake.models import IncomingFile
from diagnosis.intake.scoring import score_xray
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, AuditEvent, XRay, XRayStatus
from diagnosis.storage.xrays import xray_storage

logger = logging.getLogger(__name__)

UPLOAD = "upload"


@dataclass
class Repair:
    """What a repair found and did (a dry run only finds)."""

    files_found: int = 0  # journal rows of dead writers
    xrays_found: int = 0  # X-rays to score again
    files_removed: int = 0
    files_kept: int = 0  # of dead writers, but the store could not delete them: retried next time
    scored: Counter = field(default_factory=Counter)  # new status -> X-rays scored again
    store_errors: list = field(default_factory=list)  # the error class of each file kept

    @property
    def xrays_scored(self):
        return sum(self.scored.values())


def interrupted_files(now=None):
    """The journal rows whose writer is dead."""
    return [row for row in IncomingFile.objects.all() if processes.is_dead(row.writer, row.started_at, now)]


def abandoned_xrays(now=None):
    """X-rays left "scoring" by a dead process, and, while a model is active, X-rays "pending";
    oldest first, each with the process that left it (empty for pending ones)."""
    statuses = Q(status=XRayStatus.SCORING)
    if ModelVersion.active() is not None:
        statuses |= Q(status=XRayStatus.PENDING)
    rows = XRay.objects.filter(statuses).order_by("uploaded_at", "pk").values_list("pk", "status", "scoring_by", "scoring_since")
    return [
        (pk, scoring_by if status == XRayStatus.SCORING else "")
        for pk, status, scoring_by, scoring_since in rows
        if status == XRayStatus.PENDING or processes.is_dead(scoring_by, scoring_since, now)
    ]


def repair_uploads(*, command="repair_uploads", dry_run=False, progress=None):
    """Remove the files of interrupted uploads and score again the X-rays they left unscored.

    ``command`` names the ``manage.py`` command in the audit trail; ``progress(message)`` is told
    about each X-ray. With ``dry_run`` nothing changes: the counts say what would be done."""
    repair = Repair()
    files, xrays = interrupted_files(), abandoned_xrays()
    repair.files_found, repair.xrays_found = len(files), len(xrays)
    if dry_run:
        return repair
    for row in files:
        if _remove(row, command, repair) and progress is not None:
            progress(f"Removed the file of an upload interrupted in {row.writer}")
    for pk, left_by in xrays:
        unscored = XRay.objects.select_related("patient").filter(status__in=[XRayStatus.PENDING, XRayStatus.SCORING])
        xray = unscored.filter(pk=pk).first()
        if xray is None:  # scored or deleted meanwhile
            continue
        status = score_xray(xray)
        repair.scored[status] += 1
        if status != XRayStatus.SCORING:  # not taken by another live process meanwhile
            _audit_scored(xray, command, left_by, status)
        if progress is not None:
            progress(f"X-ray {pk}: {status}")
    return repair


def _remove(row, command, repair):
    """Delete a dead writer's file, then its journal row (the other order could leave a file
    without a row if this process died between them); True when this repair removed them."""
    if not XRay.objects.filter(image=row.name).exists():  # never a stored X-ray's file
        try:
            xray_storage.delete(row.name)
        except OSError as exc:
            logger.error("The repair could not remove the file of an interrupted upload (%s)", type(exc).__name__)
            repair.files_kept += 1
            repair.store_errors.append(type(exc).__name__)
            return False
    with transaction.atomic():  # the row and its audit event go together
        deleted, _ = IncomingFile.objects.filter(pk=row.pk).delete()
        if not deleted:  # removed by another repair meanwhile
            return False
        audit.record_operation(
            command, AuditAction.DELETE, UPLOAD, f"removed {row.name}, left by the interrupted upload of {row.writer}"
        )
    repair.files_removed += 1
    return True


def _audit_scored(xray, command, left_by, status):
    how = f"left scoring by {left_by}" if left_by else "left pending while a model was active"
    AuditEvent.objects.create(
        user=None,
        username=f"manage.py {command} ({audit.system_user()})",
        action=AuditAction.CHANGE,
        patient=xray.patient,
        patient_mrn=xray.patient.mrn,
        object_type="xray",
        object_id=xray.pk,
        detail=f"scored again after an interrupted upload ({how}): {status}"[:200],
    )
