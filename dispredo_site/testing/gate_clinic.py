"""A clinic on which two tiny real ONNX models are of known quality, for the activation gate's tests.

"bright" scores every finding by the image's mean brightness, "dark" by its opposite. Readings mark
every finding present on bright X-rays and absent on dark ones, so "bright" ranks them perfectly
(AUROC 1) and "dark" inverts them (AUROC 0).
"""

import io

import numpy as np
from django.utils import timezone
from PIL import Image

from diagnosis.lifecycle.registry import register_model_version
from diagnosis.readings.models import ExportPseudonym, Mark, Reading, ReadingStatus
from diagnosis.records.models import Patient
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.tiny_model import build_tiny_artefact

DARK_IMAGES = (20, 50, 80, 110)  # marked absent
BRIGHT_IMAGES = (150, 180, 210, 240)  # marked present
def png(value, size=48):
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def model(tmp_path, name, response, *, active=False, patients=None, size=32):
    build_tiny_artefact(tmp_path / name, name=name, response=response, patients=patients, size=size)
    return register_model_version(tmp_path / name, activate=active)


def reading(
    value, present, *, pseudonym=None, marks=None, status=ReadingStatus.SIGNED, content=None, version=1, xray=None
):
    """A reading of a new patient's X-ray of uniform brightness ``value``; every finding present or absent."""
    if xray is None:
        number = Patient.objects.count() + 1
        patient = Patient.objects.create(mrn=f"G{number}", name=f"Gate Patient {number}")
        if pseudonym is not None:
            ExportPseudonym.objects.create(patient=patient, number=pseudonym)
        xray = make_xray(patient, content=content or png(value))
    mark = Mark.PRESENT if present else Mark.ABSENT
    return Reading.objects.create(
        xray=xray,
        version=version,
        status=status,
        marks=marks or {name: mark for name in FINDINGS},
        signed_at=timezone.now() if status == ReadingStatus.SIGNED else None,
    )


def clinic():
    """Eight signed-off readings on which "bright" is perfect and "dark" inverted."""
    for value in DARK_IMAGES:
        reading(value, present=False)
    for value in BRIGHT_IMAGES:
        reading(value, present=True)
