"""The audit trail: who viewed, created, changed, exported or deleted which patient record, and when."""

import getpass

from diagnosis.records.models import AuditAction, AuditEvent, Patient, XRay


def _detail(text):
    """``text`` as the trail keeps it: at most 200 characters, NUL (which PostgreSQL cannot store
    in text, and a request's unchecked parameters may hold) shown as the replacement character."""
    return text.replace("\x00", "\ufffd")[:200]


def record(request, action, obj, detail=""):
    """Log that ``request.user`` did ``action`` to ``obj`` (a Patient, an X-ray or a Reading)."""
    record_by(request.user, action, obj, detail)


def record_by(user, action, obj, detail=""):
    """Log that ``user`` did ``action`` to ``obj``: for service functions that have no request
    (``user`` None: whoever ran the management command)."""
    if isinstance(obj, Patient):
        patient, object_type = obj, "patient"
    elif isinstance(obj, XRay):
        patient, object_type = obj.patient, "xray"
    else:
        patient, object_type = obj.xray.patient, obj._meta.model_name
    AuditEvent.objects.create(
        user=user,
        username=_name_of(user),
        action=action,
        patient=patient if patient.pk else None,
        patient_mrn=patient.mrn,
        object_type=object_type,
        object_id=obj.pk,
        detail=_detail(detail),
    )


def record_refusal(user, patient, patient_mrn, detail):
    """Log that an incoming X-ray was refused and nothing stored (object id 0): by ``user``, for
    ``patient`` when a registered one was chosen or matched, else the record number it came with."""
    AuditEvent.objects.create(
        user=user,
        username=_name_of(user),
        action=AuditAction.REFUSE,
        patient=patient,
        patient_mrn=(patient.mrn if patient is not None else patient_mrn or "")[:64],
        object_type="xray",
        object_id=0,
        detail=_detail(detail),
    )


def _name_of(user):
    return user.get_username() if user is not None else f"manage.py ({system_user()})"


def record_list_view(request, object_type, detail=""):
    """Log that ``request.user`` viewed a list page (``object_type`` "worklist" or "patientlist"):
    one row per page view, with no patient and object id 0; ``detail`` holds the filters or the
    search used and the page (a search may be a patient's name: the trail holds identifiers anyway)."""
    AuditEvent.objects.create(
        user=request.user,
        username=request.user.get_username(),
        action=AuditAction.VIEW,
        patient=None,
        patient_mrn="",
        object_type=object_type,
        object_id=0,
        detail=_detail(detail),
    )


def record_model_change(user, version, detail):
    """Log a change to a model version (no patient): by ``user``, or by whoever ran a command."""
    AuditEvent.objects.create(
        user=user,
        username=_name_of(user),
        action=AuditAction.CHANGE,
        patient=None,
        patient_mrn="",
        object_type="modelversion",
        object_id=version.pk,
        detail=_detail(detail),
    )


def record_export(user, xray, image_name):
    """Log that ``xray`` was exported for training as ``image_name`` (``manage.py export_readings``),
    by ``user`` or, with none, by whoever ran the command."""
    AuditEvent.objects.create(
        user=user,
        username=_name_of(user),
        action=AuditAction.EXPORT,
        patient=xray.patient,
        patient_mrn=xray.patient.mrn,
        object_type="xray",
        object_id=xray.pk,
        detail=_detail(f"exported for training as {image_name}"),
    )


def system_user():
    """Who runs a management command, for the trail's user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_operation(command, action, object_type, detail, using="default"):
    """Log a whole-installation operation run from ``manage.py command`` (a backup, a restore): no
    patient, object id 0, written to the database ``using``."""
    AuditEvent.objects.using(using).create(
        user=None,
        username=f"manage.py {command} ({system_user()})",
        action=action,
        patient=None,
        patient_mrn="",
        object_type=object_type,
        object_id=0,
        detail=_detail(detail),
    )
