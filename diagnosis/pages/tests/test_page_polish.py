"""Page polish: labelled filters, the upload error tied to its input, the favicon and one date format."""

from datetime import date, datetime, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from diagnosis.intake.content import INVALID_IMAGE_MESSAGE
from diagnosis.pages.forms import UploadForm, WorklistFilterForm
from diagnosis.records.models import Patient
from dispredo_site.testing.factories import make_xray

WORKLIST = reverse("diagnosis:worklist")
UPLOAD = reverse("diagnosis:upload")
FILE_INPUT = '<input type="file" name="image" id="id_image" accept="image/png,image/jpeg,application/dicom,.dcm" required'
OVERRIDE = '<input type="checkbox" name="score_anyway" id="id_score_anyway" value="on"> <label for="id_score_anyway">'
NOON_ISH = datetime(2026, 11, 30, 14, 5, tzinfo=timezone.utc)


@pytest.mark.django_db
def test_the_worklist_filters_have_visible_labels_for_their_selects(staff_client):
    form = WorklistFilterForm()
    assert form["status"].label == "Status"
    html = staff_client.get(WORKLIST).content.decode()
    assert '<label for="id_status">Status</label><select name="status" id="id_status">' in html
    assert f'<label for="id_finding">{form["finding"].label}</label><select name="finding" id="id_finding">' in html


@pytest.mark.django_db
def test_the_patient_search_has_a_visible_label(staff_client):
    html = staff_client.get(reverse("diagnosis:patient_list")).content.decode()
    assert '<label for="id_q">Search patients</label><input type="search" name="q" id="id_q"' in html


@pytest.mark.django_db
def test_an_upload_error_is_tied_to_the_file_input(staff_client, patient, tiny_model):
    response = staff_client.post(UPLOAD, {"patient": patient.pk, "image": SimpleUploadedFile("scan.png", b"not an image")})
    assert response.status_code == 200
    html = response.content.decode()
    assert FILE_INPUT + ' aria-invalid="true" aria-describedby="image-errors">' in html
    assert f'<ul class="errorlist" id="image-errors"><li>{INVALID_IMAGE_MESSAGE}</li></ul>' in html
    assert html.count('id="image-errors"') == 1


@pytest.mark.django_db
def test_without_an_error_the_file_input_is_not_marked_invalid(staff_client, tiny_model):
    response = staff_client.get(UPLOAD)
    assert response.status_code == 200
    html = response.content.decode()
    assert FILE_INPUT + ">" in html
    assert "aria-invalid" not in html and 'id="image-errors"' not in html and OVERRIDE not in html


@pytest.mark.django_db
@pytest.mark.parametrize("offered", [True, False])
def test_the_score_anyway_box_shows_only_when_the_form_offers_it(staff, offered):
    request = RequestFactory().get(UPLOAD)
    request.user = staff
    form = UploadForm()
    form.offer_override = offered
    html = render_to_string("diagnosis/upload.html", {"form": form, "model_version": None}, request=request)
    assert (OVERRIDE in html) is offered


@pytest.mark.django_db
def test_favicon_ico_redirects_permanently_to_the_svg_without_signing_in(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and icon["Content-Type"].startswith("image/svg+xml")
    page = client.get(reverse("login")).content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page


@pytest.mark.django_db
def test_dates_are_iso_on_the_patient_pages(staff_client, patient):
    patient.date_of_birth = date(1990, 11, 30)
    patient.save()
    Patient.objects.filter(pk=patient.pk).update(created_at=NOON_ISH)
    make_xray(patient, uploaded_at=NOON_ISH)

    detail = staff_client.get(patient.get_absolute_url()).content.decode()
    assert "<dt>Date of birth</dt><dd>1990-11-30</dd>" in detail
    assert "<dt>Registered</dt><dd>2026-11-30 by nurse</dd>" in detail
    assert '<tr><td class="when">2026-11-30 14:05</td>' in detail

    listing = staff_client.get(reverse("diagnosis:patient_list")).content.decode()
    assert '<td class="when">1990-11-30</td>' in listing

    # The date input needs ISO too: a browser shows "30/11/1990" as blank and saving would drop it.
    edit = staff_client.get(reverse("diagnosis:patient_edit", args=[patient.pk])).content.decode()
    assert '<input type="date" name="date_of_birth" value="1990-11-30" id="id_date_of_birth">' in edit


@pytest.mark.django_db
def test_dates_are_iso_on_the_worklist(staff_client, patient):
    make_xray(patient, uploaded_at=NOON_ISH)
    html = staff_client.get(WORKLIST).content.decode()
    assert '<td class="when">2026-11-30 14:05</td>' in html
