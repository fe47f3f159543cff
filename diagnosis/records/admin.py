"""The admin's pages for patients, X-rays, predictions and the audit trail (registered by ``diagnosis.admin``)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from diagnosis.records.models import Prediction, XRay, XRayStatus


class XRayInline(admin.TabularInline):
    model = XRay
    fields = ["uploaded_at", "status", "view_position", "original_name", "uploaded_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class PatientAdmin(admin.ModelAdmin):
    list_display = ["mrn", "name", "sex", "date_of_birth", "xray_count", "created_at", "created_by"]
    list_filter = ["sex", "created_at"]
    search_fields = ["mrn", "name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [XRayInline]

    @admin.display(description="X-rays")
    def xray_count(self, obj):
        return obj.xrays.count()

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class PredictionInline(admin.TabularInline):
    model = Prediction
    fields = ["finding", "probability", "flagged", "model_version"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-probability"]

    def has_add_permission(self, request, obj=None):
        return False


class XRayAdmin(admin.ModelAdmin):
    list_display = ["id", "patient", "uploaded_at", "status", "view_position", "flagged_findings", "uploaded_by"]
    list_filter = ["status", "view_position", "uploaded_at", "predictions__model_version"]
    search_fields = ["patient__mrn", "patient__name", "original_name", "sha256"]
    list_select_related = ["patient", "uploaded_by"]
    # What was uploaded, for whom, and what became of it is the record: not edited by hand.
    readonly_fields = [
        "image_preview", "patient", "status", "original_name", "sha256", "width", "height", "uploaded_by",
        "uploaded_at", "error", "guard_overridden", "study_date", "accession_number", "study_instance_uid",
        "sop_instance_uid",
    ]
    exclude = ["image"]
    inlines = [PredictionInline]  # diagnosis.admin puts the readings first
    date_hierarchy = "uploaded_at"

    def has_add_permission(self, request):
        # An X-ray comes in through a door (page, API, DICOM), which checks, stores and scores it.
        return False

    @admin.display(description="Image")
    def image_preview(self, obj):
        if obj is None or obj.pk is None:
            return "—"  # nothing stored yet, so no image to show
        # Through the view that checks the user: X-ray files have no public URL.
        url = reverse("diagnosis:xray_image", args=[obj.pk])
        return format_html('<a href="{}"><img src="{}" alt="X-ray" style="max-width:240px"></a>', url, url)

    @admin.display(description="Flagged")
    def flagged_findings(self, obj):
        # Only the last scoring's flags: a failed rescoring keeps the earlier rows, which are not its result.
        if obj.status != XRayStatus.DONE:
            return "—"
        return ", ".join(p.finding for p in obj.predictions.all() if p.flagged) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("predictions")


class PredictionAdmin(admin.ModelAdmin):
    list_display = ["xray", "finding", "probability", "flagged", "model_version"]
    list_filter = ["finding", "flagged", "model_version"]
    search_fields = ["xray__patient__mrn", "xray__patient__name"]
    list_select_related = ["xray__patient", "model_version"]

    # Predictions are what a model said: nobody edits them by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "username", "action", "object_type", "object_id", "patient_mrn", "detail"]
    list_filter = ["action", "object_type", "at"]
    search_fields = ["username", "patient_mrn", "detail"]
    date_hierarchy = "at"

    # The trail is evidence: nobody adds, edits or removes entries through the admin.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
