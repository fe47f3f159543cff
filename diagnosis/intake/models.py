"""The intake's journal of files being written for X-rays not yet stored."""

from django.db import models
from django.utils import timezone


class IncomingFile(models.Model):
    """A file being written for an incoming X-ray, committed before its first byte is written and
    deleted in the transaction that stores the X-ray's row.

    So a process killed while receiving leaves a row that names its (partial) file, and
    ``diagnosis.intake.repair`` removes both once the writer is known to be gone: no file is ever
    without a row, and no X-ray row without its file."""

    name = models.CharField(max_length=200, unique=True, help_text="The file's name in the X-ray storage.")
    writer = models.CharField(max_length=100, help_text="The process writing it (host:pid:start).")
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["started_at"]

    def __str__(self):
        return f"{self.name} (by {self.writer} since {self.started_at:%Y-%m-%d %H:%M:%S})"
