"""Memory per upload is bounded: the size is decided from the header, before any pixel is decoded.

The memory itself is measured by python -m bench.upload_memory (a fresh process per upload); these tests
check the decisions and the messages, and that the images a clinic sends still go through.
"""

import io

import numpy as np
import pytest
from PIL import Image

from diagnosis.records.models import XRay
from dispredo_core.image_limits import DEFAULT_MAX_IMAGE_BYTES, TOO_LARGE_CODE
from dispredo_core.imaging import RefusedImage, open_xray, to_grayscale
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.malformed_corpus import chest_dicom, encoded, png_header_only, post_upload, ramp_png16

MB = 1024 * 1024
TOO_LARGE_7000 = (
    "The image is too large: 7000 x 7000 pixels at 16 bits takes 94 MB to decode; the limit is 48 MB. "
    "Reduce it before uploading."
)


@pytest.fixture(autouse=True)
def default_limit(settings):
    settings.DISPREDO_MAX_IMAGE_BYTES = DEFAULT_MAX_IMAGE_BYTES


@pytest.mark.django_db
def test_it_refuses_a_16_bit_7000_px_png_of_120_kb_with_the_sizes_and_the_limit(
    staff_client, patient, tiny_model, private_media
):
    data = ramp_png16(7000)
    assert len(data) < 200 * 1024

    response = post_upload(staff_client, patient, b"plate.png", data)

    assert response.status_code == 200
    assert response.context["form"].errors["image"] == [TOO_LARGE_7000]
    assert response.context["form"].errors.as_data()["image"][0].code == TOO_LARGE_CODE
    assert not XRay.objects.exists() and stored_files(private_media) == []


def test_the_refusal_is_decided_from_the_header_alone():
    """A PNG whose header declares 7000 x 7000 16-bit pixels but holds almost no pixel data gets the
    same refusal: nothing was decoded to decide it."""
    with pytest.raises(RefusedImage) as refused:
        open_xray(png_header_only(7000, 7000, bit_depth=16))
    assert (refused.value.code, refused.value.message) == (TOO_LARGE_CODE, TOO_LARGE_7000)


def test_a_dicom_too_large_is_refused_from_its_header_before_decoding():
    with pytest.raises(RefusedImage) as refused:
        open_xray(chest_dicom(16, rows=7000, columns=7000))
    assert (refused.value.code, refused.value.message) == ("dicom_too_large", TOO_LARGE_7000)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["png", "dicom"])
def test_a_3000_px_16_bit_plate_is_still_accepted(staff_client, patient, tiny_model, kind):
    if kind == "png":
        name, data = b"plate.png", ramp_png16(3000)
    else:
        ramp = (np.arange(3000, dtype=np.uint32) * 4095 // 2999).astype(np.uint16)
        name, data = b"plate.dcm", chest_dicom(pixels=np.broadcast_to(ramp, (3000, 3000)))
    response = post_upload(staff_client, patient, name, data)
    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert (xray.width, xray.height) == (3000, 3000) and xray.predictions.count() == 14


@pytest.mark.django_db
def test_a_1024_px_nih_original_is_accepted(staff_client, patient, tiny_model, sample_images):
    response = post_upload(staff_client, patient, b"nih.png", sample_images["rgba_1024"].read_bytes())
    assert response.status_code == 302
    assert XRay.objects.get().predictions.count() == 14


@pytest.mark.django_db
def test_the_limit_is_the_setting(staff_client, patient, tiny_model, sample_images, settings):
    """DISPREDO_MAX_IMAGE_BYTES: a 1024 px RGBA original takes 4 MB decoded (4 bytes a pixel)."""
    settings.DISPREDO_MAX_IMAGE_BYTES = 3 * MB
    response = post_upload(staff_client, patient, b"nih.png", sample_images["rgba_1024"].read_bytes())
    assert response.context["form"].errors["image"] == [
        "The image is too large: 1024 x 1024 pixels at 32 bits takes 4 MB to decode; the limit is 3 MB. "
        "Reduce it before uploading."
    ]
    settings.DISPREDO_MAX_IMAGE_BYTES = 4 * MB
    assert post_upload(staff_client, patient, b"nih.png", sample_images["rgba_1024"].read_bytes()).status_code == 302


@pytest.mark.django_db
def test_a_jpeg_over_the_limit_is_decoded_reduced_instead(staff_client, patient, tiny_model, sample_images, settings):
    """2048 x 1536 RGB is 12 MB decoded; with a 1 MB limit it is read at a quarter (512 x 384)."""
    settings.DISPREDO_MAX_IMAGE_BYTES = 1 * MB
    with Image.open(sample_images["gray_1024"]) as image:
        photo = image.convert("RGB").resize((2048, 1536))
    response = post_upload(staff_client, patient, b"photo.jpg", encoded(photo, "JPEG", quality=90))
    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert (xray.width, xray.height) == (512, 384) and xray.predictions.count() == 14


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_decompression_bomb_limit_stays_in_force_above_a_raised_setting(settings):
    """Raising DISPREDO_MAX_IMAGE_BYTES never lets more pixels through than Pillow's own limit."""
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, not turned off anywhere
    settings.DISPREDO_MAX_IMAGE_BYTES = 10 * 1024 * MB
    with pytest.raises(RefusedImage) as refused:
        open_xray(png_header_only(10_000, 10_000, bit_depth=1))
    assert refused.value.message == (
        "The image is too large: 10000 x 10000 pixels is more than the 89 million pixels an image may have. "
        "Reduce it before uploading."
    )


def test_16_bit_windowing_in_bands_gives_the_same_pixels_as_all_at_once():
    """to_grayscale windows a 16-bit image a band of rows at a time; the result is the whole-image one."""
    rng = np.random.default_rng(3)
    values = rng.integers(1000, 60000, size=(1500, 1200), dtype=np.uint16)
    image = Image.open(io.BytesIO(encoded(Image.fromarray(values), "PNG")))
    assert image.mode == "I;16"
    low, high = float(values.min()), float(values.max())
    expected = np.round((values.astype(np.float64) - low) * (255.0 / (high - low))).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(to_grayscale(image)), expected)
