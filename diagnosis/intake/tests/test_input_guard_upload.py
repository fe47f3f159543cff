"""The input guard on the upload page: refusals store nothing, the override is recorded."""


import numpy as np
import pytest
from PIL import Image, ImageOps

from diagnosis.intake.pipeline import GUARD_OVERRIDE_DETAIL
from diagnosis.records.models import AuditEvent, Patient, XRay
from dispredo_core.guard import REFUSAL_MESSAGE
from dispredo_site.testing.helpers import stored_files, upload_file


@pytest.fixture
def chart_png(tmp_path):
    """A bar chart, as a user might pick from the wrong folder."""
    image = Image.new("RGB", (640, 480), "white")
    pixels = np.asarray(image).copy()
    for i, height in enumerate([120, 300, 210, 380, 90]):
        pixels[460 - height : 460, 60 + i * 110 : 140 + i * 110] = (31, 119, 180)
    pixels[460:463, 40:620] = 0
    path = tmp_path / "chart.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.django_db
def test_a_picture_that_is_not_a_chest_xray_is_refused_and_nothing_is_stored(staff_client, default_model, chart_png, private_media):
    response = upload_file(staff_client, chart_png, new_mrn="NEW-1", new_name="Grace Hopper")
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors == {"image": [REFUSAL_MESSAGE]}
    assert REFUSAL_MESSAGE == "This does not look like a frontal chest X-ray, so it was not scored."
    assert form.offer_override is True
    assert b'id="id_score_anyway"' in response.content
    assert not XRay.objects.exists() and not Patient.objects.exists()
    assert stored_files(private_media) == []
    [event] = AuditEvent.objects.all()
    assert (event.action, event.patient, event.patient_mrn) == ("refuse", None, "NEW-1")
    assert event.detail == f"the upload page: not_chest_xray: {REFUSAL_MESSAGE}"


@pytest.mark.django_db
def test_an_inverted_chest_xray_is_refused(staff_client, default_model, patient, sample_images, tmp_path, private_media):
    negative = tmp_path / "negative.png"
    ImageOps.invert(Image.open(sample_images["gray_1024"]).convert("L")).save(negative)
    response = upload_file(staff_client, negative, patient)
    assert response.context["form"].errors == {"image": [REFUSAL_MESSAGE]}
    assert not XRay.objects.exists() and stored_files(private_media) == []


@pytest.mark.django_db
def test_staff_can_confirm_and_score_it_anyway_and_the_override_is_audited(staff_client, staff, default_model, patient, chart_png):
    response = upload_file(staff_client, chart_png, patient, score_anyway="on")
    xray = XRay.objects.get()
    assert response.redirect_chain[-1][0] == xray.get_absolute_url()
    assert xray.guard_overridden is True and xray.status == "done" and xray.predictions.count() == 14
    event = AuditEvent.objects.get(object_type="xray", action="change")
    assert (event.user, event.object_id, event.detail) == (staff, xray.pk, GUARD_OVERRIDE_DETAIL)
    assert b'id="guard-override"' in response.content


@pytest.mark.django_db
def test_a_real_chest_xray_passes_without_any_override(staff_client, default_model, patient, sample_images):
    response = upload_file(staff_client, sample_images["gray_1024"], patient)
    xray = XRay.objects.get()
    assert xray.guard_overridden is False and xray.predictions.count() == 14
    assert not AuditEvent.objects.filter(action="change").exists()
    assert b'id="low-resolution"' not in response.content


@pytest.mark.django_db
def test_a_small_source_is_scored_with_a_low_resolution_warning(staff_client, default_model, patient, sample_images):
    response = upload_file(staff_client, sample_images["px_64"], patient)
    xray = XRay.objects.get()
    assert xray.status == "done" and xray.is_low_resolution
    assert "Low resolution: this image is 64×64 pixels, under 256 on its short side." in response.content.decode()
    big = upload_file(staff_client, sample_images["px_256"], patient)
    assert b'id="low-resolution"' not in big.content
