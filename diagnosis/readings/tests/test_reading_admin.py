"""Readings in the admin: listed, filtered, searched and shown, but never added, edited or deleted there."""

import pytest
from django.urls import reverse

from diagnosis.readings import rules as readings
from diagnosis.readings.models import Reading
from diagnosis.records.models import Patient
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray

ALL_ABSENT = {name: "absent" for name in FINDINGS}


@pytest.fixture
def two_readings(patient, reader):
    other = Patient.objects.create(mrn="P2", name="Mary Somerville")
    signed = readings.sign_off(make_xray(patient), reader, ALL_ABSENT | {"Edema": "present"}, "Edema.")
    draft = readings.save_draft(make_xray(other), reader, {"Mass": "present"}, "Query mass.")
    return signed, draft


@pytest.mark.django_db
def test_the_admin_lists_filters_and_searches_readings(admin_client_, two_readings):
    signed, draft = two_readings
    changelist = reverse("admin:diagnosis_reading_changelist")
    assert admin_client_.get(changelist).context["cl"].result_count == 2
    assert list(admin_client_.get(changelist, {"status__exact": "signed"}).context["cl"].result_list) == [signed]
    assert list(admin_client_.get(changelist, {"q": "somerville"}).context["cl"].result_list) == [draft]
    html = admin_client_.get(reverse("admin:diagnosis_reading_change", args=[signed.pk])).content.decode()
    assert "<tr><td>Edema</td><td>Present</td></tr>" in html and "<tr><td>Mass</td><td>Absent</td></tr>" in html


@pytest.mark.django_db
def test_readings_are_read_only_in_the_admin(admin_client_, two_readings):
    signed, _ = two_readings
    change = reverse("admin:diagnosis_reading_change", args=[signed.pk])
    admin_client_.post(change, {"impression": "Edited in the admin", "status": "draft"})
    signed.refresh_from_db()
    assert (signed.impression, signed.status) == ("Edema.", "signed")
    assert admin_client_.get(reverse("admin:diagnosis_reading_add")).status_code == 403
    assert admin_client_.post(reverse("admin:diagnosis_reading_delete", args=[signed.pk]), {"post": "yes"}).status_code == 403
    assert Reading.objects.count() == 2


@pytest.mark.django_db
def test_the_xray_admin_page_shows_its_readings_read_only(admin_client_, two_readings, reader):
    signed, _ = two_readings
    readings.amend(signed.xray, reader, ALL_ABSENT, "No edema.", "Overcalled.")
    response = admin_client_.get(reverse("admin:diagnosis_xray_change", args=[signed.xray.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Overcalled." in html and "No edema." in html and "Edema." in html
    inline = next(formset for formset in response.context["inline_admin_formsets"] if formset.opts.model is Reading)
    assert not inline.has_add_permission and not inline.has_change_permission and not inline.has_delete_permission
