import base64
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .admin_activation import ActivationAdminMixin
from .artefact import ArtefactError, resolve
from .findings import FINDINGS
from .models import AuditEvent, ModelVersion, Patient, Prediction, XRay
from .reading_admin import ReadingInline
from .registry import set_operating_point
from .reliability import DEFAULT_SPECIFICITY, HoldoutError
from .templatetags.figures import auroc_with_interval, rate_with_interval


class OperatingPointForm(forms.Form):
    specificity = forms.FloatField(
        label="Target specificity",
        min_value=0.5,
        max_value=0.999,
        help_text="Share of patients without a finding who should stay below its threshold, e.g. 0.95.",
    )


class XRayInline(admin.TabularInline):
    model = XRay
    fields = ["uploaded_at", "status", "view_position", "original_name", "uploaded_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Patient)
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


@admin.register(XRay)
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
    inlines = [ReadingInline, PredictionInline]
    date_hierarchy = "uploaded_at"

    @admin.display(description="Image")
    def image_preview(self, obj):
        # Through the view that checks the user: X-ray files have no public URL.
        url = reverse("diagnosis:xray_image", args=[obj.pk])
        return format_html('<a href="{}"><img src="{}" alt="X-ray" style="max-width:240px"></a>', url, url)

    @admin.display(description="Flagged")
    def flagged_findings(self, obj):
        return ", ".join(p.finding for p in obj.predictions.all() if p.flagged) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("predictions")


@admin.register(Prediction)
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


@admin.register(ModelVersion)
class ModelVersionAdmin(ActivationAdminMixin, admin.ModelAdmin):
    list_display = ["name", "is_active", "created_at", "test_mean_auroc", "artefact_path"]
    list_filter = ["is_active"]
    search_fields = ["name", "artefact_path"]
    readonly_fields = ["created_at", "operating_point_table", "metrics_json", "evaluation_report"]
    exclude = ["evaluation", "thresholds", "metrics", "reliability", "operating_point", "is_active"]  # see ModelVersionForm
    actions = ["make_active"]

    def get_urls(self):
        view = self.admin_site.admin_view(self.operating_point_view)
        return [
            path("<int:pk>/operating-point/", view, name="diagnosis_modelversion_operating_point"),
            *self.activation_urls(),
            *super().get_urls(),
        ]

    def operating_point_view(self, request, pk):
        """Set the target specificity of a version: the same function as manage.py operating_point."""
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        current = (version.operating_point or {}).get("target_specificity", DEFAULT_SPECIFICITY)
        form = OperatingPointForm(request.POST or None, initial={"specificity": current})
        if request.method == "POST" and form.is_valid():
            try:
                changed = set_operating_point(version, form.cleaned_data["specificity"], user=request.user)
            except (HoldoutError, ArtefactError) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    f"{version.name}: thresholds set for specificity {form.cleaned_data['specificity']:g}; "
                    f"{changed} stored prediction(s) re-flagged.",
                    messages.SUCCESS,
                )
                return redirect("admin:diagnosis_modelversion_change", version.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Operating point of {version.name}",
            "form": form,
            "version": version,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/diagnosis/modelversion/operating_point.html", context)

    @admin.display(description="Test mean AUROC")
    def test_mean_auroc(self, obj):
        value = obj.evaluation.get("test", {}).get("mean_auroc")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "—"

    # Versions come from artefacts (manage.py train, setup), which carry validated thresholds.
    def has_add_permission(self, request):
        return False

    @admin.display(description="Operating point and reliability")
    def operating_point_table(self, obj):
        point = (obj.operating_point or {}).get("findings", {})
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    name,
                    _fmt(obj.thresholds.get(name)),
                    rate_with_interval(point.get(name, {}).get("sensitivity")),
                    rate_with_interval(point.get(name, {}).get("specificity")),
                    auroc_with_interval(obj.finding_reliability(name)),
                    "yes" if obj.is_reliable(name) else "no (never flagged)",
                )
                for name in FINDINGS
            ),
        )
        target = (obj.operating_point or {}).get("target_specificity")
        link = reverse("admin:diagnosis_modelversion_operating_point", args=[obj.pk]) if obj.pk else ""
        return format_html(
            "<p>Target specificity: {}. <a href=\"{}\">Change the operating point</a></p>"
            "<table><tr><th>Finding</th><th>Flag at or above</th><th>Sensitivity (95 % CI)</th>"
            "<th>Specificity (95 % CI)</th><th>AUROC on unseen patients (95 % CI)</th><th>Reliable</th></tr>{}</table>"
            "<p>A finding is reliable when the lower end of its AUROC interval is at least {}.</p>",
            "not set" if target is None else f"{target:g}",
            link,
            rows,
            (obj.reliability or {}).get("floor", "—"),
        )

    @admin.display(description="Training metrics")
    def metrics_json(self, obj):
        return format_html(
            "<details><summary>Show</summary><pre>{}</pre></details>", json.dumps(obj.metrics, indent=2, sort_keys=True)
        )

    @admin.display(description="Evaluation")
    def evaluation_report(self, obj):
        if not obj.evaluation:
            return "Not evaluated yet: run manage.py evaluate --version " + obj.name
        parts = []
        for split in sorted(obj.evaluation):
            report = obj.evaluation[split]
            rows = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (name, _fmt(m.get("auroc")), _fmt(m.get("precision")), _fmt(m.get("recall")), _fmt(m.get("f1")))
                    for name, m in in_findings_order(report.get("findings", {}))
                ),
            )
            roc = resolve(obj.artefact_path) / f"roc_{split}.png"
            image = ""
            if roc.is_file():
                image = format_html(
                    '<img alt="ROC curves" style="max-width:640px" src="data:image/png;base64,{}">',
                    base64.b64encode(roc.read_bytes()).decode(),
                )
            flags = ""
            if "flags_per_image" in report:  # reports saved before these figures lack them
                flags = format_html(
                    "<p>Flags per image {} (findings present per image {}); mean probability {} against a "
                    "prevalence of {}; Brier score {}.</p>",
                    _fmt(report["flags_per_image"]), _fmt(report["findings_per_image"]),
                    _fmt(report["mean_probability"]), _fmt(report["prevalence"]), _fmt(report["brier_score"]),
                )
            parts.append(
                format_html(
                    "<h3>{} split: mean AUROC {}</h3>{}<table><tr><th>Finding</th><th>AUROC</th><th>Precision</th>"
                    "<th>Recall</th><th>F1</th></tr>{}</table>{}",
                    split, _fmt(report.get("mean_auroc")), flags, rows, image,
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts))


@admin.register(AuditEvent)
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


def in_findings_order(by_finding):
    """``(name, value)`` pairs of a stored per-finding dict in the findings' order: PostgreSQL's
    jsonb keeps keys sorted by length, not in the order they were written."""
    return sorted(by_finding.items(), key=lambda item: FINDINGS.index(item[0]) if item[0] in FINDINGS else len(FINDINGS))


def _fmt(value):
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"
