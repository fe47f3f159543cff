"""The worklist's X-rays for a bound ``WorklistFilterForm``: one query for the page and the API."""

from diagnosis.pages.forms import AWAITING, TRIAGE
from diagnosis.readings.queries import awaiting_reading, in_reading_state, with_reading_state
from diagnosis.records.models import XRay


def filtered_xrays(form):
    """X-rays with their patient and reading state, narrowed by the form's valid filters (status,
    flagged finding, reading state) and ordered newest first or by triage; flags count only where
    the last scoring succeeded. Each page's flags and caveats come from ``results_of``."""
    xrays = with_reading_state(XRay.objects.for_lists())
    if not form.is_valid():
        return xrays
    if form.cleaned_data["status"]:
        xrays = xrays.filter(status=form.cleaned_data["status"])
    if form.cleaned_data["finding"]:
        xrays = xrays.with_flagged_finding(form.cleaned_data["finding"])
    if form.cleaned_data["reading"] == AWAITING:
        xrays = awaiting_reading(xrays)
    elif form.cleaned_data["reading"]:
        xrays = in_reading_state(xrays, form.cleaned_data["reading"])
    if form.cleaned_data["sort"] == TRIAGE:
        xrays = xrays.triage_order()
    return xrays
