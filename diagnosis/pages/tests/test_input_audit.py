"""The audit trail covers image views and the list pages: one row per page or image viewed."""

import pytest
from django.urls import reverse

from diagnosis.records.models import AuditEvent, Patient
from dispredo_site.testing.factories import make_xray


def events():
    return list(
        AuditEvent.objects.order_by("pk").values_list("username", "action", "object_type", "object_id", "patient_mrn", "detail")
    )


@pytest.mark.django_db
def test_viewing_an_xray_image_is_recorded(staff_client, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    response = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert response.status_code == 200
    assert events() == [("nurse", "view", "xray", xray.pk, "MRN001", "image")]
    assert AuditEvent.objects.get().patient == patient


@pytest.mark.django_db
def test_a_missing_image_file_is_not_recorded_as_viewed(staff_client, patient):
    xray = make_xray(patient)
    xray.image.storage.delete(xray.image.name)
    assert staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk])).status_code == 404
    assert events() == []


@pytest.mark.django_db
def test_the_worklist_records_one_row_per_page_view_with_its_filters(staff_client, staff, patient, tiny_model):
    other = Patient.objects.create(mrn="MRN002", name="Grace Hopper", created_by=staff)
    for owner in (patient, other, patient):
        make_xray(owner, version=tiny_model)

    staff_client.get(reverse("diagnosis:worklist"))
    staff_client.get(reverse("diagnosis:worklist") + "?status=done&reading=awaiting&sort=triage&page=1")

    assert events() == [
        ("nurse", "view", "worklist", 0, "", "no filters; page 1"),
        ("nurse", "view", "worklist", 0, "", "filters status=done, reading=awaiting, sort=triage; page 1"),
    ]
    assert set(AuditEvent.objects.values_list("patient", flat=True)) == {None}


@pytest.mark.django_db
def test_the_patient_list_records_the_search(staff_client, patient):
    staff_client.get(reverse("diagnosis:patient_list"))
    staff_client.get(reverse("diagnosis:patient_list") + "?q=Lovelace")
    assert events() == [
        ("nurse", "view", "patientlist", 0, "", "no search; page 1"),
        ("nurse", "view", "patientlist", 0, "", "search 'Lovelace'; page 1"),
    ]


@pytest.mark.django_db
def test_list_pages_refused_to_anonymous_users_record_nothing(client):
    assert client.get(reverse("diagnosis:worklist")).status_code == 302
    assert client.get(reverse("diagnosis:patient_list")).status_code == 302
    assert events() == []
