"""The admin's ways to make a model version active (the "Make active" action and the is_active
checkbox), both through the activation gate (``diagnosis.gate.activation``). A refusal shows the
comparison on a confirmation page whose "Activate anyway" forces it, audited as an override."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from diagnosis.gate.activation import OVERRIDDEN, ActivationRefused, activate
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records.audit import record_model_change
from dispredo_core.artefact import ArtefactError

CONFIRM_TEMPLATE = "admin/diagnosis/modelversion/activate_anyway.html"


class ModelVersionForm(forms.ModelForm):
    """The is_active checkbox as a plain form field: the form never sets the flag itself (which would
    break the at-most-one-active constraint while another version is active); ``save_model`` hands
    a tick to the gate."""

    is_active = forms.BooleanField(
        required=False, label="Active", help_text="Make this the version uploads use (through the activation gate)."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["is_active"].initial = self.instance.is_active


class ActivationAdminMixin:
    """For ``ModelVersionAdmin``: list ``make_active`` in ``actions``, ``activation_urls()`` in
    ``get_urls`` and "is_active" in ``exclude`` (the form's own checkbox replaces it)."""

    form = ModelVersionForm

    def activation_urls(self):
        view = self.admin_site.admin_view(self.activate_anyway_view)
        return [path("<int:pk>/activate-anyway/", view, name="diagnosis_modelversion_activate_anyway")]

    @admin.action(description="Make the selected version the active model")
    def make_active(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return None
        return self._activate(request, queryset.get())

    def _activate(self, request, version, force=False):
        """Activate through the gate and say how it went; a refusal returns the confirmation page."""
        try:
            result = activate(version, user=request.user, force=force)
        except ActivationRefused as refused:
            return self._confirm_page(request, refused.result)
        except ArtefactError as exc:
            self.message_user(request, f"{version.name} cannot be compared or activated: {exc}", messages.ERROR)
            return None
        self.message_user(request, result.message, messages.WARNING if result.outcome == OVERRIDDEN else messages.SUCCESS)
        return None

    def _confirm_page(self, request, result):
        context = {
            **self.admin_site.each_context(request),
            "title": f"Activate {result.candidate.name} anyway?",
            "result": result,
            "lines": result.lines(),
            "version": result.candidate,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def activate_anyway_view(self, request, pk):
        """The confirmation page's "Activate anyway" (POST): activate despite the gate."""
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._activate(request, version, force=True)
        return redirect("admin:diagnosis_modelversion_changelist")

    def save_model(self, request, obj, form, change):
        # Ticking is_active goes through the gate, which also keeps at most one version active.
        was_active = bool(obj.pk) and ModelVersion.objects.filter(pk=obj.pk, is_active=True).exists()
        wants_active = form.cleaned_data.get("is_active", was_active)
        obj.is_active = was_active and wants_active
        super().save_model(request, obj, form, change)
        if was_active and not wants_active:
            record_model_change(request.user, obj, "deactivated in the admin: no version is active now")
        elif wants_active and not was_active:
            try:
                result = activate(obj, user=request.user)
            except ActivationRefused as refused:
                request.activation_refused = refused.result
            except ArtefactError as exc:
                self.message_user(request, f"{obj.name} cannot be compared or activated: {exc}", messages.ERROR)
            else:
                self.message_user(request, result.message, messages.SUCCESS)

    def response_change(self, request, obj):
        refused = getattr(request, "activation_refused", None)
        if refused is not None:
            self.message_user(request, f"The other changes to {obj.name} were saved; it is not active.", messages.WARNING)
            return self._confirm_page(request, refused)
        return super().response_change(request, obj)
