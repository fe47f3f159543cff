"""Files every door is tried with: what is not an image at all, and a picture that is not an X-ray."""

import io
import zipfile

import numpy as np
from PIL import Image


def _png_bytes():
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scan.png", _png_bytes())
    return buffer.getvalue()


# Refused for their content with the one message for what is not a readable image.
INVALID_UPLOADS = {
    "text named .png": ("scan.png", b"this is not an image at all\n"),
    "truncated PNG": ("scan.png", _png_bytes()[:60]),
    "empty file": ("scan.png", b""),
    "PDF": ("scan.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
    "ZIP": ("scan.zip", _zip_bytes()),
    "GIF": ("scan.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"),
}


def chart_png():
    """A bar chart, as a user might pick from the wrong folder (the input guard refuses it)."""
    pixels = np.full((480, 640, 3), 255, np.uint8)
    for i, height in enumerate([120, 300, 210, 380, 90]):
        pixels[460 - height : 460, 60 + i * 110 : 140 + i * 110] = (31, 119, 180)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
