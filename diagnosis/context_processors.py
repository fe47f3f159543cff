"""Template context for every page."""

from django.utils.functional import SimpleLazyObject

from diagnosis.readings.queries import awaiting_reading as awaiting
from diagnosis.records.models import XRay


def awaiting_reading(request):
    """``awaiting_reading``: how many X-rays have no signed-off reading, for staff (None for others).

    Lazy: the one COUNT query runs only on pages that show it (the navigation of base.html)."""

    def count():
        user = getattr(request, "user", None)
        return awaiting(XRay.objects.all()).count() if user is not None and user.is_staff else None

    return {"awaiting_reading": SimpleLazyObject(count)}
