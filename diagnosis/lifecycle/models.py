"""A model version: a trained artefact registered for serving, its thresholds and what they are worth."""

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from dispredo_core.findings import FINDINGS


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
