"""Reading chest X-ray images and turning them into model pixels.

This is the one image path of Dispredo: ``mltrain preprocess`` and the upload view both call
``to_model_pixels``, so a model sees at serving time exactly the pixels it was trained on.
"""

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dicom import DicomRefused, looks_like_dicom, read_dicom

# Formats accepted on upload, decided from the file's content, never its name (DICOM besides).
ACCEPTED_FORMATS = {"PNG", "JPEG"}

# Refuse decompression bombs well before they reach memory (a 4096x4096 X-ray is 16.8 MP).
MAX_PIXELS = 50_000_000


class InvalidImage(ValueError):
    """The bytes are not a readable PNG, JPEG or DICOM chest X-ray."""


class RefusedDicom(InvalidImage):
    """DICOM that Dispredo does not take; ``code`` and ``message`` say why, for staff and PACS."""

    def __init__(self, refusal):
        super().__init__(refusal.message)
        self.code = refusal.code
        self.message = refusal.message


def open_xray(data):
    """Decode ``data`` (bytes) fully and return a PIL image, or raise ``InvalidImage``.

    DICOM (the DICM word after the preamble, or a dataset that parses) is read by ``dicom.py``
    into a display-ready 8-bit image (``format`` "DICOM", the header in ``info["dicom"]``);
    a DICOM refusal is a ``RefusedDicom``. For PNG and JPEG, ``verify()`` catches corrupt chunks
    and ``load()`` catches truncation, so a file that passes here can be stored and scored.
    """
    if not data:
        raise InvalidImage("The file is empty.")
    if looks_like_dicom(data):
        return _open_dicom(data)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise InvalidImage(f"Unsupported format {probe.format}.")
            if probe.width * probe.height > MAX_PIXELS:
                raise InvalidImage("The image is too large.")
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        # Not an image Pillow knows: DICOM without a preamble is the one other thing accepted.
        image = _open_dicom(data)
        if image is None:
            raise InvalidImage(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImage(str(exc)) from exc
    return image


def dicom_png(data):
    """PNG bytes of the display rendering of stored DICOM ``data``, for the browser."""
    buffer = io.BytesIO()
    to_grayscale(open_xray(data)).save(buffer, format="PNG")
    return buffer.getvalue()


def _open_dicom(data):
    try:
        return read_dicom(data, MAX_PIXELS)
    except DicomRefused as refusal:
        raise RefusedDicom(refusal) from refusal


def to_grayscale(image):
    """An 8-bit grayscale ('L') copy of ``image`` whatever its mode.

    RGBA originals in NIH are grayscale with an opaque alpha channel: the alpha is dropped.
    16-bit and 32-bit images are windowed to their own min..max range, since PNG does not
    record how many of the 16 bits the detector used.
    """
    if image.mode == "L":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return Image.fromarray(np.round((pixels - low) * scale).astype(np.uint8), mode="L")
    if image.mode in ("LA", "RGBA", "PA"):
        image = image.convert("RGBA").convert("RGB")
    return image.convert("L")


def to_model_pixels(image, size):
    """The ``size`` x ``size`` uint8 array a model takes for ``image`` (any mode, any size)."""
    gray = to_grayscale(image)
    if gray.size != (size, size):
        # Bilinear with a reducing filter: antialiased downscaling, as the NIH downscaled copies.
        gray = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(gray, dtype=np.uint8)
