"""A multi-picture JPEG (MPO, what many phones save) is accepted as its first picture."""

import io

import pytest
from django.urls import reverse
from PIL import Image

from diagnosis.records.models import XRay
from dispredo_core.imaging import open_xray
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.malformed_corpus import encoded, post_upload


@pytest.fixture(scope="module")
def first_picture(sample_images):
    with Image.open(sample_images["gray_1024"]) as image:
        return image.convert("L")


def mpo_of(first, second):
    return encoded(first, "MPO", save_all=True, append_images=[second], quality=90)


def probabilities(xray):
    return {p.finding: (p.probability, p.flagged) for p in xray.predictions.all()}


@pytest.mark.django_db
def test_an_mpo_is_stored_and_scored_like_the_jpeg_of_its_first_picture(
    staff_client, patient, default_model, first_picture, private_media
):
    # The second picture differs (a phone's depth map or preview), so reading it would show.
    mpo = mpo_of(first_picture, first_picture.rotate(90).resize((512, 512)))
    with Image.open(io.BytesIO(mpo)) as probe:
        assert probe.format == "MPO" and probe.n_frames == 2

    response = post_upload(staff_client, patient, b"phone.mpo", mpo)

    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert xray.image.name.endswith(".jpg") and (xray.width, xray.height) == (1024, 1024)
    assert [f.read_bytes() for f in stored_files(private_media)] == [mpo]
    served = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert served["Content-Type"] == "image/jpeg" and served.getvalue() == mpo

    post_upload(staff_client, patient, b"first.jpg", encoded(first_picture, "JPEG", quality=90))
    plain = XRay.objects.exclude(pk=xray.pk).get()
    assert probabilities(xray) == probabilities(plain)


def test_open_xray_reads_the_first_picture_as_a_jpeg(first_picture):
    image = open_xray(mpo_of(first_picture, Image.new("L", (64, 64), 255)))
    plain = open_xray(encoded(first_picture, "JPEG", quality=90))
    assert image.format == "JPEG" and image.size == (1024, 1024)
    assert image.tobytes() == plain.tobytes()
