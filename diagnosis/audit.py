"""The audit trail of patient records (FIELD convention 7): one function every view calls."""

from .models import AuditEvent, Patient, XRay


def record(request, action, obj, detail=""):
    """Log that ``request.user`` did ``action`` to ``obj`` (a Patient, X-ray or Review)."""
    if isinstance(obj, Patient):
        patient, object_type = obj, "patient"
    elif isinstance(obj, XRay):
        patient, object_type = obj.patient, "xray"
    else:
        patient, object_type = obj.xray.patient, obj._meta.model_name
    AuditEvent.objects.create(
        user=request.user,
        username=request.user.get_username(),
        action=action,
        patient=patient if patient.pk else None,
        patient_mrn=patient.mrn,
        object_type=object_type,
        object_id=obj.pk,
        detail=detail[:200],
    )
