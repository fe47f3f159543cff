"""A corpus of malformed, hostile and unusual upload files, each with the outcome it must have.

Every file is built in memory at test time, from a real NIH X-ray of the sample (never a committed
binary) or from a few bytes written here: truncated and corrupt PNG and JPEG, decompression bombs,
polyglots, formats the page does not promise (GIF, WebP, TIFF, BMP, ICO, JPEG 2000, SVG, PDF, EPS,
HTML, text), DICOM that is not an image, MPO, EXIF-rotated, 16-bit, CMYK, palette, 1 x 1 and
extreme aspect ratios, and hostile file names. ``test_malformed_corpus`` posts each one to the
upload page. What ``test_upload`` already covers (an empty file, text named .png, a 60-byte PNG,
a minimal PDF, a zip, a 1 x 1 GIF) is not repeated.

The rules the outcomes follow:
- Only PNG, JPEG (an MPO as its first picture) and DICOM are accepted, because the page promises
  those: any other format is refused with the page's message, however well formed.
- A file that is damaged or incomplete is refused; nothing is stored.
- Size is decided from the header before decoding (``dispredo_core.image_limits``): too many decoded
  bytes or pixels is refused with the sizes in the message; a JPEG is decoded reduced when that fits.
- A polyglot that is a valid PNG, JPEG or DICOM is accepted as that image: it is stored under a
  generated name and only ever served as the image (PNG/JPEG with ``nosniff``, DICOM rendered to
  PNG), never with a type a browser could sniff into HTML or a script.
- The file name is only displayed: hostile names are accepted under a sanitised display name.
"""

import io
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from diagnosis.intake.content import INVALID_IMAGE_MESSAGE
from dispredo_core.dicom import NO_PIXELS_MESSAGE

REQUIRED_MESSAGE = "Please choose an X-ray image file."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOUNDARY = "CorpusBoundary7d1f"


@dataclass(frozen=True)
class Case:
    """One file: ``build(xray)`` makes its bytes from a real X-ray (a PIL 'L' image).

    ``refused`` is the exact message on the image field; None means accepted and stored, then
    ``suffix`` is the stored file's extension, ``served`` the type the image view sends, ``size``
    the (width, height) recorded, and ``display_name`` the name shown (default: the file name)."""

    label: str
    build: object
    why: str
    file_name: bytes = b"xray.png"
    refused: str | None = None
    suffix: str = ".png"
    served: str = "image/png"
    size: tuple | None = None
    display_name: str | None = None


# --- building blocks -------------------------------------------------------------------------------


def encoded(image, format, **params):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def png_chunk(kind, payload):
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def png_header_only(width, height, bit_depth=8, colour_type=0):
    """A PNG that declares ``width`` x ``height`` but carries almost no pixel data: what a
    decompression bomb looks like to a header check."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([bit_depth, colour_type, 0, 0, 0])
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def ramp_png16(size):
    """A valid 16-bit grayscale PNG of ``size`` x ``size`` pixels, written row by row (never whole in
    memory): the first row a ramp 0..65535, every row below it PNG's "Up" filter of zeros. About
    120 KB at 7000 x 7000, which is 98 MB of pixels decoded."""
    first = bytes([0]) + b"".join(int(x * 65535 / (size - 1)).to_bytes(2, "big") for x in range(size))
    same = bytes([2]) + bytes(2 * size)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(first)] + [compressor.compress(same) for _ in range(size - 1)]
    parts.append(compressor.flush())
    header = size.to_bytes(4, "big") * 2 + bytes([16, 0, 0, 0, 0])
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def jpeg_header_only(width, height):
    """A JPEG that declares ``width`` x ``height`` (one grayscale component) and stops after its headers."""
    sof = b"\xff\xc0" + (11).to_bytes(2, "big") + bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    sof += bytes([1, 1, 0x11, 0])
    sos = b"\xff\xda" + (8).to_bytes(2, "big") + bytes([1, 1, 0, 0, 63, 0])
    return b"\xff\xd8" + sof + sos + b"\x00" * 16 + b"\xff\xd9"


def chest_dicom(size=256, pixels=None, preamble=b"\0" * 128, rows=None, columns=None):
    """An uncompressed 16-bit DX chest DICOM: ``pixels`` (uint16 [size, size]) or a smooth ramp.
    ``rows``/``columns`` override what the header declares (with the pixel data left as it is)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=preamble)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.Modality, dataset.BodyPartExamined = "DX", "CHEST"
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    if pixels is None:
        ramp = (np.arange(size, dtype=np.uint32) * 4095 // max(size - 1, 1)).astype(np.uint16)
        pixels = np.broadcast_to(ramp, (size, size))
    dataset.Rows, dataset.Columns = rows or pixels.shape[0], columns or pixels.shape[1]
    dataset.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart_body(fields, file_name, content, content_type="application/octet-stream"):
    """A multipart/form-data body (bytes) with ``fields`` and one file part "image" whose
    Content-Disposition carries ``file_name`` exactly as given (bytes: any encoding, any content)."""
    boundary = BOUNDARY.encode()
    parts = []
    for name, value in fields.items():
        parts.append(
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
            + str(value).encode() + b"\r\n"
        )
    parts.append(
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="' + file_name + b'"\r\n'
        + b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content + b"\r\n"
    )
    parts.append(b"--" + boundary + b"--\r\n")
    return b"".join(parts)


def post_upload(client, patient, file_name, content, **fields):
    """POST one file to the upload page with its name as raw bytes in the multipart header."""
    from django.urls import reverse

    body = multipart_body({"patient": patient.pk, **fields}, file_name, content)
    return client.generic(
        "POST", reverse("diagnosis:upload"), body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )


# --- the files --------------------------------------------------------------------------------------


def _png(xray):
    return encoded(xray, "PNG")


def _jpeg(xray):
    return encoded(xray, "JPEG", quality=90)


def _bad_crc(xray):
    data = bytearray(_png(xray))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF
    return bytes(data)


def _mpo(xray):
    return encoded(xray, "MPO", save_all=True, append_images=[xray.resize((64, 64))], quality=90)


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _rotated_jpeg(xray):
    # 256 x 192 upright, stored sideways (192 x 256); Orientation 6 turns it back for a viewer.
    upright = xray.resize((256, 192))
    return encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=_exif(6))


def _damaged_exif_jpeg(xray):
    jpeg = _jpeg(xray)
    garbage = b"Exif\0\0" + b"II*\0" + b"\xff\xff\xff\x7f" + b"\x13" * 40
    app1 = b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage
    return jpeg[:2] + app1 + jpeg[2:]


def _png16(xray):
    return encoded(Image.fromarray(np.asarray(xray, dtype=np.uint16) * 257), "PNG")


def _gif_bomb(xray):
    screen = (65535).to_bytes(2, "little") * 2
    descriptor = b"," + bytes(4) + screen + b"\0"
    return b"GIF89a" + screen + b"\0\0\0" + descriptor + b"\x02\x02\x44\x01\0;"


def _animated_gif(xray):
    return encoded(xray, "GIF", save_all=True, append_images=[xray.rotate(5)])


def _svg(xray):
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">'
        b"<script>alert(document.cookie)</script><rect width='256' height='256'/></svg>"
    )


def _html(xray):
    return b"<!doctype html><html><body><img src=x onerror=alert(document.cookie)></body></html>"


def _html_then_png(xray):
    return b"<html><script>alert(1)</script></html>\n" + _png(xray)


def _eps(xray):
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 256 256\n(%pipe%id) (w) file\nshowpage\n%%EOF\n"


def _gifar(xray):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return encoded(xray, "GIF") + buffer.getvalue()


def _png_with_zip(xray):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "<script>alert(1)</script>")
    return _png(xray) + buffer.getvalue()


def _png_with_html_text(xray):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "<html><body><script>alert(document.cookie)</script></body></html>")
    return encoded(xray, "PNG", pnginfo=info)


def _jpeg_with_html_comment(xray):
    return encoded(xray, "JPEG", quality=90, comment=b"<html><script>alert(document.cookie)</script></html>")


def _dicom_with_html_preamble(xray):
    pixels = np.asarray(xray, dtype=np.uint16) * 16
    preamble = b"<html><script>alert(1)</script>".ljust(128, b" ")
    return chest_dicom(pixels=pixels, preamble=preamble)


def _pydicom_file(name):
    def build(xray):
        from pydicom.data import get_testdata_file

        with open(get_testdata_file(name), "rb") as handle:
            return handle.read()

    return build


def _large_jpeg(xray):
    # 4096 x 4096 RGB is 64 MB in memory, over the 48 MB limit: decoded at half size instead.
    return encoded(xray.resize((4096, 4096)).convert("RGB"), "JPEG", quality=85)


def _truncated_jpeg(xray):
    data = _jpeg(xray)
    return data[: len(data) * 6 // 10]


def _tiff16(xray):
    return encoded(Image.fromarray(np.asarray(xray, dtype=np.uint16) * 257), "TIFF")


def _palette(xray):
    return encoded(xray.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG")


def _with_alpha(xray):
    return encoded(Image.merge("LA", [xray, Image.new("L", xray.size, 255)]), "PNG")


def _resized(size, format, **params):
    return lambda xray: encoded(xray.resize(size), format, **params)


def refused(label, build, why, message=INVALID_IMAGE_MESSAGE, name=b"xray.png"):
    return Case(label, build, why, file_name=name, refused=message)


def stored(label, build, why, name=b"xray.png", size=None, display_name=None):
    """Accepted: the stored extension and served type follow the content (PNG, JPEG or DICOM)."""
    suffix, served = {b".jpg": (".jpg", "image/jpeg"), b".mpo": (".jpg", "image/jpeg"), b".dcm": (".dcm", "image/png")}.get(
        name[-4:], (".png", "image/png")
    )
    return Case(label, build, why, file_name=name, suffix=suffix, served=served, size=size, display_name=display_name)


def too_large(width, height, bits, needed):
    return (
        f"The image is too large: {width} x {height} pixels at {bits} bits takes {needed} MB to decode; "
        "the limit is 48 MB. Reduce it before uploading."
    )


def too_many_pixels(width, height):
    return (
        f"The image is too large: {width} x {height} pixels is more than the 89 million pixels an image "
        "may have. Reduce it before uploading."
    )


BOMB = "The image is too large: it declares more than 178 million pixels. Reduce it before uploading."


def cases():
    """The corpus: a list of ``Case``, at least 30 files (with the default 48 MB limit)."""
    return [
        # Damaged or incomplete.
        refused("truncated JPEG", _truncated_jpeg, "cut mid-scan: load() finds it truncated", name=b"cut.jpg"),
        refused("PNG without IEND", lambda x: _png(x)[:-12], "incomplete: the end chunk is missing"),
        refused("PNG with a bad CRC", _bad_crc, "a corrupt chunk: verify() checks every CRC"),
        refused("JPEG start marker only", lambda x: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "headers, no image", name=b"x.jpg"),
        refused("PNG signature only", lambda x: PNG_SIGNATURE, "a signature without chunks"),
        refused("PNG of zero width", lambda x: png_header_only(0, 256), "no pixels at all"),
        # Decompression bombs: refused from the header, before any pixel is decoded.
        refused(
            "16-bit 7000 x 7000 PNG", lambda x: ramp_png16(7000), "120 KB on disk, 98 MB decoded", too_large(7000, 7000, 16, 94)
        ),
        refused(
            "RGBA 4000 x 4000 PNG header", lambda x: png_header_only(4000, 4000, 8, 6), "64 MB at 4 bytes a pixel",
            too_large(4000, 4000, 32, 62),
        ),
        refused("PNG bomb 20000 x 20000", lambda x: png_header_only(20000, 20000, 1, 0), "Pillow refuses it", BOMB),
        refused(
            "JPEG declaring 12000 x 9000", lambda x: jpeg_header_only(12000, 9000),
            "over Pillow's own pixel limit, so not decoded reduced either", too_many_pixels(12000, 9000), b"big.jpg",
        ),
        refused("JPEG bomb 65000 x 65000", lambda x: jpeg_header_only(65000, 65000), "Pillow refuses it", BOMB, b"bomb.jpg"),
        refused(
            "DICOM declaring 7000 x 7000", lambda x: chest_dicom(16, rows=7000, columns=7000),
            "Rows x Columns x Bits Allocated, checked before decoding", too_large(7000, 7000, 16, 94), b"big.dcm",
        ),
        refused("GIF bomb", _gif_bomb, "GIF is not offered (no GIF decoder ever runs)", name=b"bomb.gif"),
        # Formats the page does not promise, however well formed.
        refused("animated GIF", _animated_gif, "GIF is not PNG, JPEG or DICOM", name=b"x.gif"),
        refused("WebP", lambda x: encoded(x, "WEBP"), "WebP is not offered", name=b"x.webp"),
        refused("8-bit TIFF", lambda x: encoded(x, "TIFF"), "TIFF is not offered", name=b"x.tif"),
        refused("16-bit TIFF", _tiff16, "TIFF is not offered", name=b"x.tif"),
        refused("BMP", lambda x: encoded(x, "BMP"), "BMP is not offered", name=b"x.bmp"),
        refused("ICO", _resized((64, 64), "ICO"), "ICO is not offered", name=b"x.ico"),
        refused("JPEG 2000 file", lambda x: encoded(x, "JPEG2000"), "JPEG 2000 only inside DICOM", name=b"x.jp2"),
        refused("PDF with an image", lambda x: encoded(x.convert("RGB"), "PDF"), "a scanned page", name=b"x.pdf"),
        refused("EPS with a pipe", _eps, "PostScript would run Ghostscript: never opened", name=b"x.eps"),
        refused("SVG with a script", _svg, "not a raster the page offers", name=b"x.svg"),
        refused("HTML named .png", _html, "text, whatever its name"),
        refused("HTML followed by a PNG", _html_then_png, "a PNG must start with its signature"),
        refused("GIF with a zip (GIFAR)", _gifar, "GIF is not offered", name=b"x.gif"),
        refused("UTF-16 text", lambda x: "Chest X-ray: normal.\n".encode("utf-16"), "text", name=b"x.txt"),
        refused("DICOM RT plan", _pydicom_file("rtplan.dcm"), "DICOM that is not an image", NO_PIXELS_MESSAGE, b"plan.dcm"),
        refused("DICOM structured report", _pydicom_file("reportsi.dcm"), "not an image", NO_PIXELS_MESSAGE, b"sr.dcm"),
        refused("empty file name", _png, "how a browser sends 'no file chosen'", REQUIRED_MESSAGE, b""),
        # Accepted: valid PNG, JPEG or DICOM, whatever else they carry.
        stored("MPO", _mpo, "a phone's multi-picture JPEG: its first picture", b"x.mpo", (256, 256)),
        stored("EXIF-rotated JPEG", _rotated_jpeg, "scored upright, as the browser shows it", b"x.jpg", (256, 192)),
        stored("JPEG with damaged EXIF", _damaged_exif_jpeg, "the EXIF is ignored, as browsers do", b"x.jpg", (256, 256)),
        stored("16-bit grayscale PNG", _png16, "windowed to its own range", size=(256, 256)),
        stored("CMYK JPEG", lambda x: encoded(x.convert("CMYK"), "JPEG", quality=90), "converted to grayscale", b"x.jpg"),
        stored("palette PNG", _palette, "converted to grayscale"),
        stored("grayscale + alpha PNG", _with_alpha, "the alpha is dropped"),
        stored("progressive JPEG", lambda x: encoded(x, "JPEG", quality=90, progressive=True), "a JPEG", b"x.jpg"),
        stored("1 x 1 PNG", _resized((1, 1), "PNG"), "tiny but valid: scored with the low-resolution warning", size=(1, 1)),
        stored("1 x 1 JPEG", _resized((1, 1), "JPEG"), "tiny but valid", b"x.jpg", (1, 1)),
        stored("4000 x 1 PNG", _resized((4000, 1), "PNG"), "valid; content is the input guard's job", size=(4000, 1)),
        stored("1 x 4000 PNG", _resized((1, 4000), "PNG"), "valid; content is the input guard's job", size=(1, 4000)),
        stored("large JPEG", _large_jpeg, "decoded at half size to fit the byte limit", b"x.jpg", (2048, 2048)),
        stored("PNG followed by a zip", _png_with_zip, "a polyglot: only ever served as image/png, nosniff"),
        stored("PNG with HTML in a text chunk", _png_with_html_text, "a polyglot: only ever served as image/png"),
        stored("JPEG with HTML in a comment", _jpeg_with_html_comment, "a polyglot: only served as image/jpeg", b"x.jpg"),
        stored("DICOM with an HTML preamble", _dicom_with_html_preamble, "only served as a PNG", b"x.dcm", (256, 256)),
        # Hostile file names on a valid PNG: only the display name changes.
        stored("path traversal name", _png, "folders dropped", b"../../etc/passwd.png", display_name="passwd.png"),
        stored("Windows path name", _png, "folders dropped", b"..\\..\\boot.ini.png", display_name="boot.ini.png"),
        stored("control characters in the name", _png, "dropped", b"sc\x07an\x1b.png", display_name="scan.png"),
        stored("name that is not UTF-8", _png, "received; shown with U+FFFD", b"caf\xe9.png", display_name="caf\ufffd.png"),
        stored("300-byte name", _png, "cut to 255 bytes, extension kept", b"x" * 296 + b".png", display_name="x" * 251 + ".png"),
        stored("name '..'", _png, "Django would drop the file; kept as 'unnamed'", b"..", display_name="unnamed"),
    ]
