"""EXIF orientation: a JPEG is scored as it is shown, upright, in the upload path and in training."""

import io

import numpy as np
import pytest
from PIL import Image

from diagnosis.records.models import XRay
from dispredo_core.imaging import open_xray, to_model_pixels
from dispredo_site.testing.malformed_corpus import post_upload

ORIENTATION = 0x0112
# How to store an upright image so that each EXIF Orientation turns it back (what a camera does).
STORED_FOR = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
# JPEG compresses an image and its rotation a little differently; far below what a sideways image moves.
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def upright(sample_images):
    """A real 1024 px NIH X-ray cropped to landscape, so that a turn shows in the recorded size."""
    with Image.open(sample_images["gray_1024"]) as image:
        return image.convert("L").crop((0, 64, 1024, 960))


def jpeg(image, orientation=None):
    buffer = io.BytesIO()
    extra = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        extra["exif"] = exif.tobytes()
    image.save(buffer, format="JPEG", quality=95, **extra)
    return buffer.getvalue()


def scored(client, patient, name, data):
    """Upload ``data`` (the input guard overridden, so that every file is scored) and return the X-ray
    with its {finding: probability} and {finding: flagged}."""
    response = post_upload(client, patient, name.encode(), data, score_anyway="on")
    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))
    predictions = list(xray.predictions.all())
    return xray, {p.finding: p.probability for p in predictions}, {p.finding: p.flagged for p in predictions}


@pytest.mark.django_db
@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_an_exif_rotated_jpeg_is_scored_as_its_upright_copy(staff_client, patient, default_model, upright, orientation):
    stored = upright.transpose(STORED_FOR[orientation])

    _, reference, reference_flags = scored(staff_client, patient, "upright.jpg", jpeg(upright))
    xray, turned, turned_flags = scored(staff_client, patient, "phone.jpg", jpeg(stored, orientation))
    _, sideways, _ = scored(staff_client, patient, "sideways.jpg", jpeg(stored))

    assert max(abs(turned[f] - reference[f]) for f in reference) < TOLERANCE
    assert turned_flags == reference_flags
    # The size recorded is the upright one, as the browser shows it.
    assert (xray.width, xray.height) == upright.size
    # The same pixels without the tag are scored differently: the tolerance is not what passes it.
    assert max(abs(sideways[f] - reference[f]) for f in reference) > 3 * TOLERANCE


def test_open_xray_returns_the_upright_image_and_turns_it_only_once(upright):
    image = open_xray(jpeg(upright.transpose(STORED_FOR[6]), 6))
    expected = open_xray(jpeg(upright))
    assert image.size == upright.size and image.format == "JPEG"
    # to_model_pixels turns by the tag too (for training); the image open_xray gives has none left.
    difference = np.abs(to_model_pixels(image, 64).astype(int) - to_model_pixels(expected, 64).astype(int))
    assert difference.mean() < 1.0


def test_training_pixels_of_an_exif_rotated_file_are_upright(upright):
    """mltrain opens files with Pillow and calls to_model_pixels: the orientation applies there too."""
    with Image.open(io.BytesIO(jpeg(upright.transpose(STORED_FOR[8]), 8))) as turned:
        pixels = to_model_pixels(turned, 64).astype(int)
    with Image.open(io.BytesIO(jpeg(upright))) as straight:
        reference = to_model_pixels(straight, 64).astype(int)
    assert np.abs(pixels - reference).mean() < 1.0
    # Sideways, the same pixels differ a lot: the comparison can fail.
    with Image.open(io.BytesIO(jpeg(upright.transpose(STORED_FOR[8])))) as sideways:
        assert np.abs(to_model_pixels(sideways, 64).astype(int) - reference).mean() > 10


def test_a_png_without_exif_gives_the_same_pixels_as_before(sample_images):
    """NIH PNGs carry no orientation: to_model_pixels leaves them exactly as they were."""
    path = sample_images["rgba_1024"]
    with Image.open(path) as image:
        assert image.getexif().get(ORIENTATION) is None
        pixels = to_model_pixels(image, 64)
    with Image.open(path) as image:
        gray = image.convert("RGBA").convert("RGB").convert("L")
    expected = np.asarray(gray.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=None))
    np.testing.assert_array_equal(pixels, expected)
