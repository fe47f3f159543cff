"""The first check of every incoming X-ray: is the file a chest X-ray image we can read?

Decided from the content, never the name, in bounded memory: the size first (before the file is
read), then the header (``dispredo_core.image_limits`` before any pixel is decoded), then the
decode (``dispredo_core.imaging.open_xray``, which also applies the DICOM header rules).
"""

from dataclasses import dataclass

from django.conf import settings

from diagnosis.intake.submissions import Refusal
from dispredo_core import dicom
from dispredo_core.imaging import InvalidImage, RefusedImage, open_xray

REQUIRED_MESSAGE = "Please choose an X-ray image file."
INVALID_IMAGE_MESSAGE = "Please upload a chest X-ray image (PNG, JPEG or DICOM)."
TOO_LARGE_MESSAGE = "The file is larger than {limit} MB."


@dataclass(frozen=True)
class Content:
    """What the file holds: its bytes and, when it is a readable X-ray, its upright 8-bit grayscale
    image (the DICOM header in ``image.info["dicom"]``); else the ``refusal`` of it, with the DICOM
    header where one could still be read (for the audit trail: whose image was refused)."""

    data: bytes
    image: object = None
    refusal: Refusal | None = None
    refused_header: object = None

    @property
    def header(self):
        """The ``DicomHeader`` of a DICOM file, else None."""
        if self.image is None:
            return self.refused_header
        return self.image.info.get("dicom") if getattr(self.image, "format", None) == "DICOM" else None


def read_content(upload):
    """The ``Content`` of ``upload`` (an uploaded file, or bytes): readable, or refused."""
    if upload is None:
        return Content(b"", refusal=Refusal("required", REQUIRED_MESSAGE, "image"))
    limit = settings.DISPREDO_MAX_UPLOAD_BYTES
    size = len(upload) if isinstance(upload, bytes) else upload.size
    if size > limit:
        return Content(b"", refusal=Refusal("too_large", TOO_LARGE_MESSAGE.format(limit=limit // (1024 * 1024)), "image"))
    data = upload if isinstance(upload, bytes) else upload.read()
    try:
        return Content(data, open_xray(data))
    except RefusedImage as exc:
        return Content(data, refusal=Refusal(exc.code, exc.message, "image"), refused_header=_header_only(data))
    except InvalidImage:
        return Content(data, refusal=Refusal("invalid_image", INVALID_IMAGE_MESSAGE, "image"), refused_header=_header_only(data))


def _header_only(data):
    """The DICOM header of refused ``data`` when it still parses (pixels never decoded), else None."""
    try:
        dataset = dicom.parse(data)
    except dicom.DicomRefused:
        return None
    return dicom.header_of(dataset) if dataset is not None else None
