"""Reading chest X-ray images and turning them into model pixels.

This is the one image path of Dispredo: ``mltrain preprocess`` and the upload view both call
``to_model_pixels``, so a model sees at serving time exactly the pixels it was trained on. Both
turn an image upright by its EXIF Orientation first (``upright``), as a browser shows it.
"""

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dispredo_core import image_limits
from dispredo_core.dicom import DicomRefused, looks_like_dicom, read_dicom

# Formats accepted on upload, decided from the file's content, never its name (DICOM besides).
# Only these decoders are ever tried: Pillow's others (GIF, TIFF, EPS...) never see an upload.
# An MPO (a multi-picture JPEG, as phones save) is a JPEG followed by more pictures: the first is read.
DECODERS = ("PNG", "JPEG")
ACCEPTED_FORMATS = {"PNG", "JPEG", "MPO"}

EXIF_ORIENTATION = 0x0112

# Rows at a time when a 16-bit image is windowed to 8 bits, so its float copy stays small.
_CHUNK_PIXELS = 1 << 20


class InvalidImage(ValueError):
    """The bytes are not a readable PNG, JPEG or DICOM chest X-ray."""


class RefusedImage(InvalidImage):
    """An image refused for a reason staff (or a sending PACS's log) are told: ``code`` and ``message``."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class RefusedDicom(RefusedImage):
    """DICOM that Dispredo does not take."""

    def __init__(self, refusal):
        super().__init__(refusal.code, refusal.message)


def open_xray(data):
    """Decode ``data`` (bytes) and return an upright 8-bit grayscale ('L') PIL image, or raise
    ``InvalidImage`` (``RefusedImage`` with its own message where there is one to give).

    The size is checked from the header before decoding (``image_limits``); a JPEG too large for
    the limit is decoded at a half, a quarter or an eighth of its size instead, where that fits.
    DICOM (the DICM word after the preamble, or a dataset that parses) is read by ``dicom.py``
    into a display-ready image (the header in ``info["dicom"]``). For PNG and JPEG, ``verify()``
    catches corrupt chunks and ``load()`` truncation, so a file that passes here can be stored
    and scored. ``format`` is "PNG", "JPEG" (an MPO too: it is stored and served as its JPEG) or
    "DICOM"; only the grayscale copy is kept, so a colour or 16-bit decode is freed at once.
    """
    if not data:
        raise InvalidImage("The file is empty.")
    if looks_like_dicom(data):
        return _open_dicom(data)
    try:
        with Image.open(io.BytesIO(data), formats=DECODERS) as probe:
            scale = _check_size(probe)
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=DECODERS)
        if scale > 1:
            image.draft(image.mode, (image.width // scale, image.height // scale))
        image.load()
        # Turned after the grayscale conversion: the same pixels, a quarter of the memory for colour.
        gray = to_grayscale(image)
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise RefusedImage(image_limits.TOO_LARGE_CODE, image_limits.bomb_message()) from exc
    except UnidentifiedImageError as exc:
        # Not a PNG or JPEG: DICOM without a preamble is the one other thing accepted.
        image = _open_dicom(data)
        if image is None:
            raise InvalidImage(str(exc)) from exc
        return image
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(str(exc)) from exc
    gray.info = dict(image.info)
    gray = upright(gray)
    gray.format = "JPEG" if image.format == "MPO" else image.format
    return gray


def _check_size(probe):
    """Refuse what is too large to decode; the JPEG decoding scale that fits (1 for full size)."""
    if probe.format not in ACCEPTED_FORMATS:
        raise InvalidImage(f"Unsupported format {probe.format}.")
    bytes_per_pixel = image_limits.pillow_bytes_per_pixel(probe.mode)
    message = image_limits.too_large_message(
        probe.width, probe.height, image_limits.bits_per_pixel(probe.mode), bytes_per_pixel
    )
    if message is None:
        return 1
    scale = image_limits.jpeg_reduction(probe.width, probe.height, bytes_per_pixel)
    pillow_limit = image_limits.max_image_pixels()
    within_pillow = not pillow_limit or probe.width * probe.height <= pillow_limit
    if probe.format in ("JPEG", "MPO") and scale is not None and within_pillow:
        return scale
    raise RefusedImage(image_limits.TOO_LARGE_CODE, message)


def upright(image):
    """``image`` turned as its EXIF Orientation says (``ImageOps.exif_transpose``), as a browser
    shows it. The turned copy no longer carries the tag, so an image is never turned twice;
    ``image`` itself comes back when there is nothing to turn, or when its EXIF is damaged
    (browsers then show it as stored too)."""
    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) not in range(2, 9):
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a damaged EXIF block raises anything from struct.error up
        return image


def dicom_png(data):
    """PNG bytes of the display rendering of stored DICOM ``data``, for the browser."""
    buffer = io.BytesIO()
    open_xray(data).save(buffer, format="PNG")
    return buffer.getvalue()


def _open_dicom(data):
    try:
        return read_dicom(data)
    except DicomRefused as refusal:
        raise RefusedDicom(refusal) from refusal


def to_grayscale(image):
    """An 8-bit grayscale ('L') copy of ``image`` whatever its mode.

    RGBA originals in NIH are grayscale with an opaque alpha channel: the alpha is dropped.
    16-bit and 32-bit images are windowed to their own min..max range, since PNG does not
    record how many of the 16 bits the detector used; a band of rows at a time, so that a large
    image never has a full-size float copy.
    """
    if image.mode == "L":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _window_to_8_bits(image)
    if image.mode == "PA":
        image = image.convert("RGBA")
    # LA and RGBA: the alpha is dropped (the same pixels as going through RGB first).
    return image.convert("L")


def _window_to_8_bits(image):
    low, high = (float(value) for value in image.getextrema())
    scale = 255.0 / (high - low) if high > low else 0.0
    width, height = image.size
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _CHUNK_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        band = np.asarray(image.crop((0, top, width, min(top + rows, height))), dtype=np.float64)
        out[top : top + rows] = np.round((band - low) * scale).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def to_model_pixels(image, size):
    """The ``size`` x ``size`` uint8 array a model takes for ``image`` (any mode, any size),
    upright by its EXIF Orientation."""
    gray = to_grayscale(upright(image))
    if gray.size != (size, size):
        # Bilinear with a reducing filter: antialiased downscaling, as the NIH downscaled copies.
        gray = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(gray, dtype=np.uint8)
