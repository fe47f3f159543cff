import logging

import markdown
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import ProtectedError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST, require_safe

from diagnosis.intake.pipeline import receive
from diagnosis.intake.scoring import heatmap_of
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.pages.forms import (
    AmendmentForm,
    PatientSearchForm,
    ReadingForm,
    UploadForm,
    WorklistFilterForm,
)
from diagnosis.pages.worklists import filtered_xrays
from diagnosis.records.forms import PatientForm
from diagnosis.readings import rules as readings
from diagnosis.records import audit
from diagnosis.records.access import get_patient_for_user, get_xray_for_user, staff_required
from diagnosis.records.models import AuditAction, Patient, Source, XRay, XRayStatus
from diagnosis.records.results import result_of, results_of
from dispredo_core.artefact import model_card_path
from dispredo_core.imaging import InvalidImage, dicom_png

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
# A class activation map coarser than this many cells a side says nothing about where the model looked.
MIN_HEATMAP_CELLS = 8


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without_page(request):
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@staff_required
def worklist(request):
    form = WorklistFilterForm(request.GET or None, version=ModelVersion.active())
    xrays = filtered_xrays(form)
    page = _page(request, xrays)
    audit.record_list_view(request, "worklist", f"{_filters_used(form)}; page {page.number}")
    return render(
        request,
        "diagnosis/worklist.html",
        {"form": form, "page": page, "rows": _rows(page), "query": _query_without_page(request)},
    )


def _rows(page):
    """(X-ray, its Result) for each X-ray of ``page``."""
    return list(zip(page.object_list, results_of(page.object_list)))


def _filters_used(form):
    if not form.is_bound:
        return "no filters"
    if not form.is_valid():
        return "invalid filters: " + form.data.urlencode()
    used = [f"{name}={value}" for name, value in form.cleaned_data.items() if value]
    return "filters " + ", ".join(used) if used else "no filters"


@staff_required
def patient_list(request):
    form = PatientSearchForm(request.GET or None)
    patients = Patient.objects.all()
    search = ""
    if form.is_valid():
        search = form.cleaned_data["q"]
        patients = patients.search(search)
    page = _page(request, patients)
    detail = (f"search {search!r}" if search else "no search") + f"; page {page.number}"
    audit.record_list_view(request, "patientlist", detail)
    return render(
        request, "diagnosis/patient_list.html", {"form": form, "page": page, "query": _query_without_page(request)}
    )


@staff_required
def patient_create(request):
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        patient = form.save(commit=False)
        patient.created_by = request.user
        patient.save()
        audit.record(request, AuditAction.CREATE, patient)
        messages.success(request, f"Patient {patient} registered.")
        return redirect(patient)
    return render(request, "diagnosis/patient_form.html", {"form": form})


@staff_required
def patient_edit(request, pk):
    patient = get_patient_for_user(request, pk)
    form = PatientForm(request.POST or None, instance=patient)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record(request, AuditAction.CHANGE, patient, detail="changed " + ", ".join(form.changed_data))
        messages.success(request, f"Patient {patient} updated.")
        return redirect(patient)
    return render(request, "diagnosis/patient_form.html", {"form": form, "patient": patient})


@staff_required
@require_POST
def patient_delete(request, pk):
    patient = get_patient_for_user(request, pk)
    try:
        with transaction.atomic():
            audit.record(request, AuditAction.DELETE, patient)
            patient.delete()
    except ProtectedError:
        messages.error(request, f"Patient {patient} has X-rays on record and cannot be deleted.")
        return redirect(patient)
    messages.success(request, f"Patient {patient} deleted.")
    return redirect("diagnosis:patient_list")


@staff_required
def patient_detail(request, pk):
    patient = get_patient_for_user(request, pk)
    page = _page(request, patient.xrays.for_lists())
    audit.record(request, AuditAction.VIEW, patient)
    return render(request, "diagnosis/patient_detail.html", {"patient": patient, "page": page, "rows": _rows(page)})


@staff_required
def upload(request):
    initial = {}
    if request.GET.get("patient", "").isdigit():
        initial["patient"] = request.GET["patient"]
    form = UploadForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST":
        outcome = receive(form.incoming(request.user, Source.PAGE))
        if outcome.stored:
            if outcome.status == XRayStatus.PENDING:
                messages.warning(request, "X-ray stored. No model is installed yet, so it is pending diagnosis.")
            elif outcome.status == XRayStatus.FAILED:
                messages.error(request, "X-ray stored, but the model could not score it. An administrator has been told.")
            return redirect(outcome.xray)
        form.refuse(outcome)
    return render(
        request,
        "diagnosis/upload.html",
        {"form": form, "model_version": ModelVersion.active()},
    )


@staff_required
@require_safe
def xray_detail(request, pk):
    xray = get_xray_for_user(request, pk)
    audit.record(request, AuditAction.VIEW, xray)
    return render_xray_page(request, xray)


def render_xray_page(request, xray, *, reading_form=None, amendment_form=None):
    """The X-ray page: the image, the model's findings (its ``Result``), and apart from them the
    reading, with a bound form (after refused input) or one filled from the reading itself, never
    from the model."""
    result = result_of(xray, heatmaps=True)
    version = result.model_version
    heatmaps = {}
    for finding in result.ranked:
        cam = heatmap_of(finding.prediction)
        if cam is not None and min(cam.shape) >= MIN_HEATMAP_CELLS:
            heatmaps[finding.finding] = cam.round(4).tolist()
    first = result.ranked[0].prediction if result.scored else None
    coarse_map = first.heatmap_shape if first is not None and first.heatmap and not heatmaps else None
    reading = readings.current_reading(xray)
    may_sign_off = readings.can_sign_off(request.user)
    if reading is not None and reading.is_signed:
        if amendment_form is None and may_sign_off:
            amendment_form = AmendmentForm(initial=ReadingForm.initial_from(reading))
    elif reading_form is None:
        reading_form = ReadingForm(initial=ReadingForm.initial_from(reading))
    return render(
        request,
        "diagnosis/xray_detail.html",
        {
            "xray": xray,
            "result": result,
            "heatmaps": heatmaps,
            "coarse_map": coarse_map,
            "min_heatmap_cells": MIN_HEATMAP_CELLS,
            "has_model_card": version is not None and model_card_path(version.artefact_path).is_file(),
            # The same file under another record is often a wrong-patient upload: say so.
            "same_image": XRay.objects.filter(sha256=xray.sha256).exclude(pk=xray.pk).select_related("patient")[:5],
            "reading": reading,
            "reading_rows": readings.mark_rows(reading),
            "earlier_readings": readings.earlier_versions(xray, reading),
            "can_sign_off": may_sign_off,
            "reading_form": reading_form,
            "amendment_form": amendment_form,
        },
    )


@staff_required
def xray_image(request, pk):
    """The X-ray's image for a signed-in staff member; DICOM is rendered to PNG here, never sent as is."""
    xray = get_xray_for_user(request, pk)
    content_type = "image/png" if xray.image.name.endswith(".png") else "image/jpeg"
    try:
        handle = xray.image.open("rb")
    except FileNotFoundError:
        logger.error("The file of X-ray %s is missing", xray.pk)  # no file name in a log line
        raise Http404("The image file of this X-ray is missing.") from None
    audit.record(request, AuditAction.VIEW, xray, detail="image")
    if xray.is_dicom:
        with handle:
            try:
                response = HttpResponse(dicom_png(handle.read()), content_type="image/png")
            except InvalidImage as exc:
                # Stored before a rule that now refuses it (e.g. the decode-size limit): kept, not shown.
                code = getattr(exc, "code", "invalid_image")
                logger.error("The DICOM file of X-ray %s cannot be rendered (%s)", xray.pk, code)
                raise Http404("The stored DICOM file of this X-ray cannot be shown.") from None
    else:
        response = FileResponse(handle, content_type=content_type)
    # NoStoreMiddleware marks it no-store: patient images never linger in a cache.
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff_required
def model_card(request, pk):
    """The model card of a model version, rendered for signed-in staff."""
    version = get_object_or_404(ModelVersion, pk=pk)
    path = model_card_path(version.artefact_path)
    if not path.is_file():
        raise Http404("This model version has no model card.")
    # The card is the artefact's own document, written by the project, not user input.
    html = markdown.markdown(path.read_text(encoding="utf-8"), extensions=["tables", "sane_lists"])
    return render(request, "diagnosis/model_card.html", {"version": version, "card": mark_safe(html)})
