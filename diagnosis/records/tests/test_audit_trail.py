"""The audit trail: who viewed, created, changed and deleted patient records (readings: test_reading_*)."""

import pytest
from django.urls import reverse

from diagnosis.records.models import AuditEvent, Patient
from dispredo_site.testing.factories import make_xray


def trail():
    return list(AuditEvent.objects.order_by("pk").values_list("username", "action", "object_type", "patient_mrn"))


@pytest.mark.django_db
def test_the_audit_trail_records_who_viewed_created_changed_and_deleted(staff_client):
    staff_client.post(reverse("diagnosis:patient_create"), {"mrn": "A1", "name": "Ann", "sex": "F"})
    patient = Patient.objects.get()
    staff_client.get(patient.get_absolute_url())
    staff_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]), {"mrn": "A1", "name": "Anne", "sex": "F"})
    staff_client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert trail() == [
        ("nurse", "create", "patient", "A1"),
        ("nurse", "view", "patient", "A1"),
        ("nurse", "change", "patient", "A1"),
        ("nurse", "delete", "patient", "A1"),
    ]
    assert AuditEvent.objects.get(action="change").detail == "changed name"
    # The trail outlives the record it describes.
    assert set(AuditEvent.objects.values_list("patient", flat=True)) == {None}


@pytest.mark.django_db
def test_a_refused_deletion_leaves_no_delete_event(staff_client, patient):
    make_xray(patient)
    staff_client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert not AuditEvent.objects.filter(action="delete").exists()


@pytest.mark.django_db
def test_viewing_a_result_is_recorded(staff_client, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    staff_client.get(xray.get_absolute_url())
    assert trail() == [("nurse", "view", "xray", "MRN001")]


@pytest.mark.django_db
def test_the_audit_trail_is_read_only_in_the_admin(admin_client_, staff_client, patient):
    staff_client.get(patient.get_absolute_url())
    event = AuditEvent.objects.get()
    assert admin_client_.get(reverse("admin:diagnosis_auditevent_changelist")).status_code == 200
    assert admin_client_.post(reverse("admin:diagnosis_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == 1
