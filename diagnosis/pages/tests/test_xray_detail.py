import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.records.models import XRay


@pytest.fixture
def scored_xray(staff_client, patient, tiny_model, sample_images):
    path = sample_images["px_256"]
    staff_client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())})
    return XRay.objects.get()


@pytest.mark.django_db
def test_the_result_page_shows_findings_high_to_low_with_flags(staff_client, scored_xray, tiny_model, staff):
    response = staff_client.get(scored_xray.get_absolute_url())
    html = response.content.decode()
    result = response.context["result"]
    predictions = result.ranked
    assert response.status_code == 200
    assert len(predictions) == 14
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert result.flagged == [p for p in predictions if p.probability >= 0.5]
    assert html.count('class="flagged"') == len(result.flagged)
    assert "Research use only: not for clinical diagnosis" in html
    assert tiny_model.name in html and staff.username in html
    assert reverse("diagnosis:xray_image", args=[scored_xray.pk]) in html
    # Stored heatmaps for every finding, drawn client-side without recomputation.
    assert set(response.context["heatmaps"]) == {p.finding for p in predictions}


@pytest.mark.django_db
def test_the_image_view_sends_the_stored_file_privately(staff_client, scored_xray, sample_images):
    response = staff_client.get(reverse("diagnosis:xray_image", args=[scored_xray.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "no-store"  # set by dispredo_site.middleware.NoStoreMiddleware
    assert b"".join(response.streaming_content) == sample_images["px_256"].read_bytes()


@pytest.mark.django_db
def test_an_unknown_xray_is_404(staff_client):
    assert staff_client.get(reverse("diagnosis:xray_detail", args=[12345])).status_code == 404
    assert staff_client.get(reverse("diagnosis:xray_image", args=[12345])).status_code == 404


@pytest.mark.django_db
def test_a_missing_image_file_is_404_not_an_error(staff_client, scored_xray):
    scored_xray.image.storage.delete(scored_xray.image.name)
    assert staff_client.get(reverse("diagnosis:xray_image", args=[scored_xray.pk])).status_code == 404


@pytest.mark.django_db
def test_the_same_image_under_another_record_is_pointed_out(staff_client, scored_xray, sample_images):
    from diagnosis.records.models import Patient

    assert 'id="same-image"' not in staff_client.get(scored_xray.get_absolute_url()).content.decode()
    other = Patient.objects.create(mrn="MRN002", name="Other Person")
    path = sample_images["px_256"]
    response = staff_client.post(
        reverse("diagnosis:upload"), {"patient": other.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())}, follow=True
    )
    assert list(response.context["same_image"]) == [scored_xray]
    html = response.content.decode()
    assert f'<a href="{scored_xray.get_absolute_url()}">X-ray {scored_xray.pk}</a> of Ada Lovelace (MRN001)' in html
    second = response.context["xray"]
    first_page = staff_client.get(scored_xray.get_absolute_url()).content.decode()
    assert f'<a href="{second.get_absolute_url()}">X-ray {second.pk}</a> of Other Person (MRN002)' in first_page
