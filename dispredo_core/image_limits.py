"""How large an image Dispredo decodes, decided from the header before any pixel is decoded.

A file's size says little about its pixels: a 100 KB PNG can declare 7000 x 7000 16-bit pixels,
98 MB once decoded. So an upload is refused when its decoded pixels (width x height x the bytes per
pixel they take in memory) exceed the limit (default 48 MB, which the web app sets from
``DISPREDO_MAX_IMAGE_BYTES`` through ``configure``: a 5000 x 5000 16-bit plate or a 12-megapixel
colour photo fits, a 7000 x 7000 16-bit PNG does not), or when it has more pixels than Pillow's own
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), which stays in force whatever the limit. PNG, JPEG (``imaging.py``) and DICOM (``dicom.py``) all ask here.
"""

import math

from PIL import Image

DEFAULT_MAX_IMAGE_BYTES = 48 * 1024 * 1024
MB = 1024 * 1024

TOO_LARGE_CODE = "image_too_large"
TOO_LARGE_MESSAGE = (
    "The image is too large: {width} x {height} pixels at {bits} bits takes {needed} MB to decode; "
    "the limit is {limit} MB. Reduce it before uploading."
)
TOO_MANY_PIXELS_MESSAGE = (
    "The image is too large: {width} x {height} pixels is more than the {limit} million pixels "
    "an image may have. Reduce it before uploading."
)
BOMB_MESSAGE = (
    "The image is too large: it declares more than {limit} million pixels. Reduce it before uploading."
)

# Bytes per pixel of Pillow's in-memory images (RGB, LA and the like take 4), and bits per pixel
# as the file has them, for the message.
_PILLOW_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_BITS = {"1": 1, "L": 8, "P": 8, "LA": 16, "PA": 16, "La": 16, "I;16": 16, "I;16B": 16, "I;16L": 16,
         "I;16N": 16, "RGB": 24, "YCbCr": 24, "LAB": 24, "HSV": 24}


_limit = {"bytes": DEFAULT_MAX_IMAGE_BYTES}


def configure(max_bytes):
    """Set the decode limit in bytes (the web app sets it from ``DISPREDO_MAX_IMAGE_BYTES``)."""
    _limit["bytes"] = int(max_bytes)


def max_image_bytes():
    """The decode limit in bytes: ``DEFAULT_MAX_IMAGE_BYTES`` unless ``configure`` set another."""
    return _limit["bytes"]


def max_image_pixels():
    """Pillow's decompression-bomb limit, or None if something in the process turned it off."""
    return Image.MAX_IMAGE_PIXELS


def pillow_bytes_per_pixel(mode):
    return _PILLOW_BYTES.get(mode, 4)


def bits_per_pixel(mode):
    return _BITS.get(mode, 32)


def too_large_message(width, height, bits, bytes_per_pixel):
    """The refusal message for an image of ``width`` x ``height`` pixels, or None if it may be decoded."""
    pixels = width * height
    limit_pixels = max_image_pixels()
    if limit_pixels and pixels > limit_pixels:
        return TOO_MANY_PIXELS_MESSAGE.format(width=width, height=height, limit=limit_pixels // 1_000_000)
    needed, limit = pixels * bytes_per_pixel, max_image_bytes()
    if needed > limit:
        return TOO_LARGE_MESSAGE.format(
            width=width, height=height, bits=bits, needed=math.ceil(needed / MB), limit=limit // MB
        )
    return None


def bomb_message():
    """The refusal for an image Pillow itself refused as a decompression bomb (twice its limit)."""
    return BOMB_MESSAGE.format(limit=2 * (max_image_pixels() or 0) // 1_000_000)


def jpeg_reduction(width, height, bytes_per_pixel):
    """The smallest JPEG decoding scale (1, 2, 4 or 8) at which ``width`` x ``height`` fits the byte
    limit, or None if even an eighth does not."""
    limit = max_image_bytes()
    for scale in (1, 2, 4, 8):
        if math.ceil(width / scale) * math.ceil(height / scale) * bytes_per_pixel <= limit:
            return scale
    return None
