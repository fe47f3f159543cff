"""The reading on the X-ray page: save a draft, sign off, amend. The rules are in ``readings``."""

from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from diagnosis.pages.forms import AmendmentForm, ReadingForm
from diagnosis.pages.views import render_xray_page
from diagnosis.readings import rules as readings
from diagnosis.readings.rules import ReadingError
from diagnosis.records.access import get_xray_for_user, staff_required

SAVE, SIGN = "save", "sign"
# Refusals that concern the reading's state, not what was typed: told above the page as it now is.
STATE_CONFLICTS = {"signed_off", "not_signed"}


@staff_required
@require_POST
def reading_save(request, pk):
    """Save the reading as a draft (any staff), or sign it off (readers only, every finding marked)."""
    xray = get_xray_for_user(request, pk)
    action = request.POST.get("action", SAVE)
    if action not in (SAVE, SIGN):
        return HttpResponseBadRequest("Unknown reading action.")
    if action == SIGN:
        readings.check_may_sign_off(request.user)
    form = ReadingForm(request.POST)
    if form.is_valid():
        marks, impression = form.marks(), form.cleaned_data["impression"]
        try:
            if action == SIGN:
                readings.sign_off(xray, request.user, marks, impression)
            else:
                readings.save_draft(xray, request.user, marks, impression)
        except ReadingError as error:
            return _refused(request, xray, form, error, "reading_form")
        messages.success(request, "Reading signed off." if action == SIGN else "Draft saved.")
        return redirect(xray)
    return render_xray_page(request, xray, reading_form=form)


@staff_required
@require_POST
def reading_amend(request, pk):
    """Amend the signed-off reading (readers only): a new signed version with its reason."""
    xray = get_xray_for_user(request, pk)
    readings.check_may_sign_off(request.user, readings.NOT_A_READER_TO_AMEND)
    form = AmendmentForm(request.POST)
    if form.is_valid():
        try:
            amendment = readings.amend(
                xray, request.user, form.marks(), form.cleaned_data["impression"], form.cleaned_data["reason"]
            )
        except ReadingError as error:
            return _refused(request, xray, form, error, "amendment_form")
        messages.success(request, f"Amendment signed off as version {amendment.version}.")
        return redirect(xray)
    return render_xray_page(request, xray, amendment_form=form)


def _refused(request, xray, form, error, form_name):
    """Nothing was stored: show the page again with the refusal."""
    if error.code in STATE_CONFLICTS:
        # Someone signed off (or the page was stale): show the reading as it now is.
        messages.error(request, error.message)
        return render_xray_page(request, xray)
    form.add_reading_error(error)
    return render_xray_page(request, xray, **{form_name: form})
