"""Who may see patient data: one rule, used by every view."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from diagnosis.records.models import Patient, XRay

STAFF_ONLY_MESSAGE = "Only clinic staff accounts can see patient records."


def staff_required(view):
    """Signed-in, active staff users only; others are sent to sign in (or refused)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied(STAFF_ONLY_MESSAGE)
        return view(request, *args, **kwargs)

    return wrapper


def get_patient_for_user(request, pk):
    # Every staff user sees every patient of the clinic; the decorator has checked the user.
    return get_object_or_404(Patient, pk=pk)


def get_xray_for_user(request, pk):
    return get_object_or_404(XRay.objects.select_related("patient", "uploaded_by"), pk=pk)
