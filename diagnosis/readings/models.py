"""A clinician's reading of an X-ray (a mark per finding and an impression, signed off and amended),
and a patient's pseudonym in exported training data."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from diagnosis.records.models import Patient, XRay
from dispredo_core.findings import FINDINGS

# The reading state of an X-ray without a reading; the others are ReadingStatus values.
UNREAD = "unread"


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
