"""Every model of the ``diagnosis`` app, for Django's app registry (which imports ``<app>.models``).

The models live with their concern: model versions in ``lifecycle``, patients, X-rays, predictions
and the audit trail in ``records``, readings in ``readings``, the intake's journal in ``intake``. Code imports them from there; only
Django and the migrations (which name ``private_storage`` and ``xray_upload_to`` here) use this module.
"""

from diagnosis.intake.models import IncomingFile
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.models import ExportPseudonym, Reading
from diagnosis.records.models import AuditEvent, Patient, Prediction, XRay, private_storage, xray_upload_to

__all__ = [
    "AuditEvent", "ExportPseudonym", "IncomingFile", "ModelVersion", "Patient", "Prediction", "Reading", "XRay",
    "private_storage", "xray_upload_to",
]
