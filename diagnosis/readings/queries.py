"""X-rays by the state of their reading: for the worklist's filters, its counts and the API."""

from django.db import models
from django.db.models.functions import Coalesce

from diagnosis.readings.models import UNREAD, Reading, ReadingStatus


def with_reading_state(xrays):
    """``xrays`` annotated with ``reading_state``: the newest reading version's status, or ``UNREAD``."""
    newest = Reading.objects.filter(xray=models.OuterRef("pk")).order_by("-version").values("status")[:1]
    return xrays.annotate(reading_state=Coalesce(models.Subquery(newest), models.Value(UNREAD)))


def awaiting_reading(xrays):
    """Those of ``xrays`` with no signed-off reading (unread or draft): what readers still have to do."""
    signed = Reading.objects.filter(xray=models.OuterRef("pk"), status=ReadingStatus.SIGNED)
    return xrays.exclude(models.Exists(signed))


def in_reading_state(xrays, state):
    """Those of ``xrays`` whose reading is ``state`` (``UNREAD`` or a ReadingStatus value)."""
    return with_reading_state(xrays).filter(reading_state=state)
