"""The printable report of an X-ray, and how the model does at this clinic."""

import math

from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.models import Mark, Reading
from diagnosis.readings.performance import MIN_PER_CLASS, site_performance, versions_with_readings
from diagnosis.records import audit
from diagnosis.records.access import get_xray_for_user, staff_required
from diagnosis.records.models import AuditAction
from diagnosis.records.results import result_of
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS

SCORES_IN_ONE_TABLE = 4


def reader_findings(reading):
    """The display names of the findings ``reading`` marks present, absent, not assessable, or not yet."""
    groups = {"present": [], "absent": [], "not_assessable": [], "unmarked": []}
    for name in FINDINGS:
        mark = reading.mark_of(name)
        groups[mark if mark in Mark.values else "unmarked"].append(DISPLAY_NAMES[name])
    return groups


@staff_required
@require_GET
def xray_report(request, pk):
    """One printable page: patient, study, thumbnail, the current reading, and the model's result apart
    (its scores only when its last scoring succeeded, with its caveats)."""
    xray = get_xray_for_user(request, pk)
    reading = Reading.objects.current().filter(xray=xray).select_related("signed_by", "updated_by").first()
    # A draft amendment: say which signed-off version it would replace.
    earlier_signed = None
    if reading is not None and not reading.is_signed and reading.is_amendment:
        earlier_signed = xray.readings.signed().filter(version__lt=reading.version).select_related("signed_by").first()
    result = result_of(xray)
    reliable = result.reliable
    # More than a few reliable findings go into two tables side by side, so the page stays one page.
    half = math.ceil(len(reliable) / 2) if len(reliable) > SCORES_IN_ONE_TABLE else len(reliable)
    audit.record(request, AuditAction.VIEW, xray, detail="report")
    return render(
        request,
        "diagnosis/report.html",
        {
            "xray": xray,
            "patient": xray.patient,
            "reading": reading,
            "findings": reader_findings(reading) if reading else None,
            "earlier_signed": earlier_signed,
            "result": result,
            "score_tables": [part for part in (reliable[:half], reliable[half:]) if part],
            "printed_at": timezone.now(),
        },
    )


@staff_required
@require_GET
def model_performance(request):
    """A model version's predictions against the clinic's signed-off readings (default: the active version)."""
    active = ModelVersion.active()
    choices = list(versions_with_readings())
    if active is not None and active not in choices:
        choices.insert(0, active)
    chosen = request.GET.get("version", "")
    if chosen:
        if not chosen.isdigit():
            raise Http404("No such model version.")
        version = get_object_or_404(ModelVersion, pk=chosen)
        if version not in choices:
            choices.append(version)
    else:
        version = active or (choices[0] if choices else None)
    return render(
        request,
        "diagnosis/model_performance.html",
        {
            "version": version,
            "choices": choices,
            "performance": site_performance(version) if version else None,
            "minimum": MIN_PER_CLASS,
        },
    )
