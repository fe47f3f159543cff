"""The admin's pages for model versions: figures, evaluation, operating point and activation
(registered by ``diagnosis.admin``)."""

import base64
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from diagnosis.gate.admin_activation import ActivationAdminMixin
from diagnosis.gate.operating_point import set_operating_point
from diagnosis.lifecycle.models import ModelVersion
from dispredo_core.artefact import ArtefactError, resolve
from dispredo_core.figures import auroc_with_interval, rate_with_interval
from dispredo_core.findings import FINDINGS
from dispredo_core.reliability import DEFAULT_SPECIFICITY, HoldoutError


class OperatingPointForm(forms.Form):
    specificity = forms.FloatField(
        label="Target specificity",
        min_value=0.5,
        max_value=0.999,
        help_text="Share of patients without a finding who should stay below its threshold, e.g. 0.95.",
    )


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


def in_findings_order(by_finding):
    """``(name, value)`` pairs of a stored per-finding dict in the findings' order: PostgreSQL's
    jsonb keeps keys sorted by length, not in the order they were written."""
    return sorted(by_finding.items(), key=lambda item: FINDINGS.index(item[0]) if item[0] in FINDINGS else len(FINDINGS))


def _fmt(value):
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"
