import hashlib
import math
import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from .findings import DISPLAY_NAMES, FINDINGS
from .storage import xray_storage


def private_storage():
    """The X-ray files' storage, ``STORAGES["xrays"]`` (diagnosis.storage): the local private folder
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
    def search(self, text):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(Q(mrn__icontains=text) | Q(name__icontains=text))


class Patient(models.Model):
    # 64: a DICOM Patient ID (LO) is up to 64 characters, and a received one becomes the record number.
    mrn = models.CharField("medical record number", max_length=64, unique=True)
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

    def __str__(self):
        return f"{self.name} ({self.mrn})"

    def get_absolute_url(self):
        return reverse("diagnosis:patient_detail", args=[self.pk])


class ModelVersion(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    artefact_path = models.CharField(
        max_length=500, help_text="Model directory: absolute, or relative to the project folder."
    )
    thresholds = models.JSONField(default=dict, help_text="Operating threshold per finding.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Validation metrics from training.")
    evaluation = models.JSONField(default=dict, blank=True, help_text="Reports of manage.py evaluate, by split.")
    reliability = models.JSONField(
        default=dict, blank=True, help_text="Per finding AUROC on unseen patients, its interval, and whether it is reliable."
    )
    operating_point = models.JSONField(
        default=dict, blank=True, help_text="Target specificity, and per finding the sensitivity and specificity it buys."
    )
    is_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="at_most_one_active_model_version"
            )
        ]

    def __str__(self):
        return f"{self.name}{' (active)' if self.is_active else ''}"

    @classmethod
    def active(cls):
        return cls.objects.filter(is_active=True).first()

    def activate(self):
        """Make this the version new uploads use (deactivating any other) in one transaction."""
        with transaction.atomic():
            ModelVersion.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            ModelVersion.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True

    def finding_reliability(self, finding):
        """The reliability figures of ``finding`` (empty when this version carries none)."""
        return (self.reliability or {}).get("findings", {}).get(finding, {})

    def is_reliable(self, finding):
        """Whether ``finding``'s AUROC on unseen patients clears the floor; a version without the
        figures has shown nothing, so none of its findings is."""
        return bool(self.finding_reliability(finding).get("reliable"))

    def reliable_findings(self):
        return [name for name in FINDINGS if self.is_reliable(name)]

    def flags(self, finding, probability):
        """The one rule for a flag: a reliable finding scored at or above its threshold."""
        return self.is_reliable(finding) and probability >= float(self.thresholds[finding])


# Sources under this many pixels on their short side are scored with a low-resolution warning.
LOW_RESOLUTION = 256


class XRayStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ViewPosition(models.TextChoices):
    PA = "PA", "PA (posteroanterior)"
    AP = "AP", "AP (anteroposterior)"


# The reading state of an X-ray without a reading; the others are ReadingStatus values.
UNREAD = "unread"


class XRayQuerySet(models.QuerySet):
    def with_flagged(self):
        flagged = Prediction.objects.filter(flagged=True).order_by("-probability")
        return self.select_related("patient", "uploaded_by").prefetch_related(
            models.Prefetch("predictions", queryset=flagged, to_attr="flagged_predictions")
        )

    def with_flagged_finding(self, finding):
        return self.filter(predictions__finding=finding, predictions__flagged=True)

    def with_reading_state(self):
        """Annotate ``reading_state``: the newest reading version's status, or ``UNREAD``."""
        newest = Reading.objects.filter(xray=models.OuterRef("pk")).order_by("-version").values("status")[:1]
        return self.annotate(reading_state=Coalesce(models.Subquery(newest), models.Value(UNREAD)))

    def awaiting_reading(self):
        """X-rays with no signed-off reading (unread or draft): what readers still have to do."""
        signed = Reading.objects.filter(xray=models.OuterRef("pk"), status=ReadingStatus.SIGNED)
        return self.exclude(models.Exists(signed))

    def in_reading_state(self, state):
        """X-rays whose reading is ``state`` (``UNREAD`` or a ReadingStatus value)."""
        return self.with_reading_state().filter(reading_state=state)

    def triage_order(self):
        """Strongest flag first: by the highest flagged prediction's probability (flags are only
        raised for reliable findings), X-rays without a flag after; newest first within ties."""
        strongest = (
            Prediction.objects.filter(xray=models.OuterRef("pk"), flagged=True)
            .order_by("-probability")
            .values("probability")[:1]
        )
        return self.annotate(strongest_flag=models.Subquery(strongest)).order_by(
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

    @property
    def display_name(self):
        return DISPLAY_NAMES[self.finding]

    @property
    def percent(self):
        return round(self.probability * 100, 1)

    @property
    def threshold(self):
        return float(self.model_version.thresholds[self.finding])

    @property
    def threshold_percent(self):
        return round(self.threshold * 100, 1)

    @property
    def reliability(self):
        return self.model_version.finding_reliability(self.finding)

    @property
    def reliable(self):
        return self.model_version.is_reliable(self.finding)

    @property
    def operating_point(self):
        """Expected sensitivity and specificity at this finding's threshold (empty if not measured)."""
        return (self.model_version.operating_point or {}).get("findings", {}).get(self.finding, {})

    @property
    def bar_position(self):
        return scale_position(self.probability)

    @property
    def marker_position(self):
        return scale_position(self.threshold)


# Scores and thresholds are mostly a few per cent: bars use a log scale from 0.1 % to 100 %, so
# that a threshold of 2 % and one of 10 % are far enough apart to see.
SCALE_DECADES = 3


def scale_position(probability):
    """Where ``probability`` sits on the bars' log scale, in per cent of the bar's width."""
    clipped = min(max(float(probability), 10.0**-SCALE_DECADES), 1.0)
    return round((math.log10(clipped) + SCALE_DECADES) / SCALE_DECADES * 100, 1)


class Mark(models.TextChoices):
    """A reader's answer for one finding."""

    PRESENT = "present", "Present"
    ABSENT = "absent", "Absent"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


class ReadingStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SIGNED = "signed", "Signed off"


class ReadingQuerySet(models.QuerySet):
    def signed(self):
        return self.filter(status=ReadingStatus.SIGNED)

    def current(self):
        """The newest version of each X-ray's reading: the record (an amendment supersedes the one it amends)."""
        newer = Reading.objects.filter(xray=models.OuterRef("xray"), version__gt=models.OuterRef("version"))
        return self.exclude(models.Exists(newer))


class Reading(models.Model):
    """A clinician's reading of one X-ray: a mark per finding and an impression.

    Version 1 is the first reading; it is a draft until a user with ``sign_off_reading`` signs it
    off, which locks it. A change after that is an amendment: version n + 1, signed, with its
    reason, while version n is kept. ``marks`` holds a ``Mark`` for each name in ``FINDINGS``
    (a draft may hold fewer).
    """

    xray = models.ForeignKey(XRay, on_delete=models.CASCADE, related_name="readings")
    version = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=ReadingStatus.choices, default=ReadingStatus.DRAFT)
    marks = models.JSONField(default=dict, blank=True, help_text="Per finding: present, absent or not_assessable.")
    impression = models.TextField(blank=True)
    amendment_reason = models.TextField(blank=True, help_text="Why a signed-off reading was amended (versions 2 and up).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = ReadingQuerySet.as_manager()

    class Meta:
        ordering = ["xray", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["xray", "version"], name="one_reading_per_xray_version"),
            models.CheckConstraint(
                condition=Q(status=ReadingStatus.DRAFT, signed_at__isnull=True)
                | Q(status=ReadingStatus.SIGNED, signed_at__isnull=False),
                name="signed_reading_has_signed_at",
            ),
        ]
        permissions = [("sign_off_reading", "Can sign off and amend readings")]

    def __str__(self):
        return f"Reading {self.version} of X-ray {self.xray_id} ({self.get_status_display()})"

    @property
    def is_signed(self):
        return self.status == ReadingStatus.SIGNED

    @property
    def is_amendment(self):
        return self.version > 1

    def mark_of(self, finding):
        return self.marks.get(finding, "")

    def present_findings(self):
        return [name for name in FINDINGS if self.marks.get(name) == Mark.PRESENT]


class ExportPseudonym(models.Model):
    """A patient's stable number in exported training data (``manage.py export_readings``).

    Drawn at random on the first export and kept, so the same patient has the same number in
    every export; it is never derived from the record number, name or date of birth.
    """

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="export_pseudonym")
    number = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Pseudonym {self.number}"


class AuditAction(models.TextChoices):
    VIEW = "view", "Viewed"
    CREATE = "create", "Created"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    EXPORT = "export", "Exported"


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
