import hashlib
import uuid
from pathlib import PurePosixPath

from django.conf import settings

"""The records: patients, their X-rays and the model's predictions for them, and the audit trail."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils import timezone

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records.identifiers import record_number
from diagnosis.storage.xrays import xray_storage
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS


def private_storage():
    """The X-ray files' storage, ``STORAGES["xrays"]`` (diagnosis.storage.xrays): the local private folder
    or a shared bucket, neither with a URL. The migrations name this callable, so it stays."""
    return xray_storage


def xray_upload_to(instance, filename):
    """A generated name, never the uploader's: xrays/2026/11/<uuid>.<ext>."""
    suffix = PurePosixPath(filename).suffix.lower() or ".img"
    return timezone.now().strftime(f"xrays/%Y/%m/{uuid.uuid4().hex}{suffix}")


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other"
    UNKNOWN = "U", "Unknown"


class PatientQuerySet(models.QuerySet):
    def with_record_number(self, mrn):
        """The patient whose record number is ``mrn`` by the rule of ``records.identifiers``: trimmed,
        ignoring case (at most one, which the constraint on ``Upper(mrn)`` guarantees)."""
        return self.filter(mrn__iexact=record_number(mrn)) if record_number(mrn) else self.none()

    def search(self, text):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(Q(mrn__icontains=text) | Q(name__icontains=text))


class Patient(models.Model):
    # 64: a DICOM Patient ID (LO) is up to 64 characters, and a received one becomes the record number.
    # Kept as given (diagnosis.records.identifiers); unique ignoring case (the constraint below).
    mrn = models.CharField("medical record number", max_length=64)
    name = models.CharField(max_length=200)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    date_of_birth = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["name", "mrn"]
        constraints = [
            models.UniqueConstraint(
                Upper("mrn"),
                name="one_patient_per_record_number_ignoring_case",
                violation_error_message="Patient with this Medical record number already exists.",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.mrn})"

    def get_absolute_url(self):
        return reverse("diagnosis:patient_detail", args=[self.pk])


# Sources under this many pixels on their short side are scored with a low-resolution warning.
LOW_RESOLUTION = 256


class XRayStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SCORING = "scoring", "Being scored"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Source(models.TextChoices):
    """The door an X-ray came in by."""

    PAGE = "page", "Upload page"
    API = "api", "REST API"
    DICOM = "dicom", "DICOM listener"


class ViewPosition(models.TextChoices):
    PA = "PA", "PA (posteroanterior)"
    AP = "AP", "AP (anteroposterior)"




class XRayQuerySet(models.QuerySet):
    """Filters on flags count only X-rays whose last scoring succeeded: a failed rescoring keeps the
    earlier run's rows for the record, and their flags are not the X-ray's (diagnosis.records.results)."""

    def for_lists(self):
        """With the patient and the uploader, as the worklist and the patient's page show them; their
        flags come from ``results_of`` (diagnosis.records.results)."""
        return self.select_related("patient", "uploaded_by")

    def with_flagged_finding(self, finding):
        return self.filter(status=XRayStatus.DONE, predictions__finding=finding, predictions__flagged=True)

    def triage_order(self):
        """Strongest flag first: by the highest flagged prediction's probability (flags are only
        raised for reliable findings) of X-rays whose last scoring succeeded, the others after;
        newest first within ties."""
        strongest = (
            Prediction.objects.filter(xray=models.OuterRef("pk"), flagged=True)
            .order_by("-probability")
            .values("probability")[:1]
        )
        done = models.Case(models.When(status=XRayStatus.DONE, then=models.Subquery(strongest)))
        return self.annotate(strongest_flag=done).order_by(
            models.F("strongest_flag").desc(nulls_last=True), "-uploaded_at", "-pk"
        )


class XRay(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="xrays")
    image = models.FileField(upload_to=xray_upload_to, storage=private_storage, max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField("content SHA-256", max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=10, choices=XRayStatus.choices, default=XRayStatus.PENDING)
    error = models.TextField(blank=True)
    view_position = models.CharField(max_length=2, choices=ViewPosition.choices, blank=True)
    clinical_note = models.TextField(blank=True)
    guard_overridden = models.BooleanField(
        default=False, help_text="Scored although the input guard found it unlike a frontal chest X-ray (confirmed by staff)."
    )
    # From the DICOM header (empty for PNG and JPEG uploads).
    study_date = models.DateField(null=True, blank=True)
    accession_number = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, blank=True)
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, blank=True)
    source = models.CharField(
        "received through", max_length=10, choices=Source.choices, blank=True,
        help_text="The door it came in by; empty for X-rays stored before this was recorded.",
    )
    calling_ae_title = models.CharField("sent by AE title", max_length=16, blank=True)
    # While status is "scoring": which process scores it (host:pid:start) and since when, so that an
    # X-ray left scoring by a process that died is found and scored again (diagnosis.intake.repair).
    scoring_by = models.CharField(max_length=100, blank=True, editable=False)
    scoring_since = models.DateTimeField(null=True, blank=True, editable=False)

    objects = XRayQuerySet.as_manager()

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        verbose_name = "X-ray"
        constraints = [
            models.UniqueConstraint(
                fields=["sop_instance_uid"], condition=~Q(sop_instance_uid=""), name="one_xray_per_sop_instance_uid"
            )
        ]

    @property
    def is_dicom(self):
        return self.image.name.lower().endswith(".dcm")

    def __str__(self):
        return f"X-ray {self.pk} of {self.patient} ({self.uploaded_at:%Y-%m-%d %H:%M})"

    def get_absolute_url(self):
        return reverse("diagnosis:xray_detail", args=[self.pk])

    @property
    def is_low_resolution(self):
        """A source under ``LOW_RESOLUTION`` px on its short side: scored, with a warning."""
        return min(self.width, self.height) < LOW_RESOLUTION

    @staticmethod
    def digest(data):
        return hashlib.sha256(data).hexdigest()


class Prediction(models.Model):
    xray = models.ForeignKey(XRay, on_delete=models.CASCADE, related_name="predictions")
    finding = models.CharField(max_length=32, choices=[(name, DISPLAY_NAMES[name]) for name in FINDINGS])
    probability = models.FloatField()
    flagged = models.BooleanField(help_text="Probability at or above the model version's threshold.")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    heatmap = models.BinaryField(
        null=True, blank=True, editable=False, help_text="Class activation map, float16 bytes (h x w)."
    )
    heatmap_shape = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-probability"]
        constraints = [
            models.UniqueConstraint(fields=["xray", "finding"], name="one_prediction_per_xray_finding")
        ]

    def __str__(self):
        return f"{self.finding}: {self.probability:.3f}{' (flagged)' if self.flagged else ''}"


class AuditAction(models.TextChoices):
    VIEW = "view", "Viewed"
    CREATE = "create", "Created"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    EXPORT = "export", "Exported"
    REFUSE = "refuse", "Refused"


class AuditEvent(models.Model):
    """Who viewed, created, changed or deleted which patient record, and when.

    Names are copied, not only linked, so the trail outlives deleted users and patients.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=10, choices=AuditAction.choices)
    patient = models.ForeignKey(Patient, null=True, on_delete=models.SET_NULL, related_name="audit_events")
    patient_mrn = models.CharField(max_length=64)
    object_type = models.CharField(max_length=20)
    object_id = models.PositiveBigIntegerField()
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.object_type} {self.object_id}"
