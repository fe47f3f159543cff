"""Patients through the API: the patient list's search and paging, and PatientForm's validation,
messages and audit events."""

import pytest
from django.urls import reverse

from api.errors import NOT_A_SINGLE_VALUE_MESSAGE, NOT_AN_OBJECT_MESSAGE
from api.patients import NO_DATE_MESSAGE
from diagnosis.pages.views import PAGE_SIZE
from diagnosis.records.models import AuditEvent, Patient

PATIENTS = reverse("api:patient-list")


def detail(patient):
    return reverse("api:patient-detail", args=[patient.pk])


def audit_rows():
    return list(AuditEvent.objects.order_by("pk").values_list("username", "action", "object_type", "object_id", "detail"))


@pytest.mark.django_db
def test_it_lists_patients_a_page_at_a_time(api, staff):
    Patient.objects.bulk_create(Patient(mrn=f"M{i:03}", name=f"Patient {i:03}", created_by=staff) for i in range(PAGE_SIZE + 3))
    first = api.get(PATIENTS).json()
    assert first["count"] == PAGE_SIZE + 3 and len(first["results"]) == PAGE_SIZE
    assert [p["mrn"] for p in first["results"]][:2] == ["M000", "M001"]  # the list page's order: name, MRN
    second = api.get(first["next"]).json()
    assert [p["mrn"] for p in second["results"]] == [f"M{i:03}" for i in range(PAGE_SIZE, PAGE_SIZE + 3)]
    assert api.get(PATIENTS + "?page=9").status_code == 404


@pytest.mark.django_db
def test_search_finds_what_the_patient_list_finds(api, staff, staff_client):
    for mrn, name in [("ABC-1", "Ada Lovelace"), ("XYZ-2", "Grace Hopper"), ("LOVE-3", "Alan Turing")]:
        Patient.objects.create(mrn=mrn, name=name, created_by=staff)
    for query in ["love", "  hopper ", "xyz", "nobody", ""]:
        found = [p["mrn"] for p in api.get(PATIENTS, {"q": query}).json()["results"]]
        page = staff_client.get(reverse("diagnosis:patient_list"), {"q": query})
        assert found == [p.mrn for p in page.context["page"]], query
    assert [p["mrn"] for p in api.get(PATIENTS, {"q": "love"}).json()["results"]] == ["ABC-1", "LOVE-3"]


@pytest.mark.django_db
def test_it_refuses_a_search_the_page_refuses(api):
    response = api.get(PATIENTS, {"q": "a\x00b"})
    assert response.status_code == 400
    assert response.json() == {"q": ["Null characters are not allowed."]}


@pytest.mark.django_db
def test_it_registers_a_patient_as_the_page_does_and_audits_it(api, staff):
    response = api.post(PATIENTS, {"mrn": " mrn-9 ", "name": "Grace   Hopper", "sex": "F", "date_of_birth": "1906-12-09"})

    assert response.status_code == 201
    patient = Patient.objects.get()
    assert (patient.mrn, patient.name, str(patient.date_of_birth), patient.created_by) == (
        "mrn-9", "Grace Hopper", "1906-12-09", staff  # the record number as given, without its spaces
    )
    body = response.json()
    assert body["id"] == patient.pk and body["mrn"] == "mrn-9" and response["Location"] == body["url"]
    assert audit_rows() == [("nurse", "create", "patient", patient.pk, "")]


INVALID_PATIENTS = {
    "taken record number": {"mrn": "mrn001", "name": "Someone Else", "sex": "F"},
    "no name": {"mrn": "NEW-1", "name": "   ", "sex": "F"},
    "unknown sex": {"mrn": "NEW-1", "name": "Eve", "sex": "Q"},
    "bad date": {"mrn": "NEW-1", "name": "Eve", "sex": "F", "date_of_birth": "31/31/2020"},
    "record number too long": {"mrn": "M" * 65, "name": "Eve", "sex": "F"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("label", INVALID_PATIENTS)
def test_it_refuses_what_the_patient_form_refuses_with_its_messages(api, staff_client, patient, label):
    data = INVALID_PATIENTS[label]
    page = staff_client.post(reverse("diagnosis:patient_create"), data)

    response = api.post(PATIENTS, data)

    # The form's messages; 409 where the only one is a clash with a registered patient (the schema says so).
    assert response.status_code == (409 if label == "taken record number" else 400)
    assert response.json() == page.context["form"].errors
    assert Patient.objects.count() == 1 and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_taken_record_number_message_is_the_forms(api, patient):
    response = api.post(PATIENTS, {"mrn": "mrn001", "name": "Someone Else", "sex": "F"})
    assert response.json() == {"mrn": ["Patient with this Medical record number already exists."]}


@pytest.mark.django_db
def test_it_refuses_a_body_that_is_not_an_object(api):
    response = api.post(PATIENTS, ["MRN1", "Eve"], format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [NOT_AN_OBJECT_MESSAGE]}


@pytest.mark.django_db
def test_it_refuses_a_list_or_an_object_as_a_field_and_reads_a_number_as_text(api):
    response = api.post(PATIENTS, {"mrn": "M1", "name": "Eve", "date_of_birth": [1990], "sex": {"F": 1}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"date_of_birth": [NOT_A_SINGLE_VALUE_MESSAGE], "sex": [NOT_A_SINGLE_VALUE_MESSAGE]}
    response = api.post(PATIENTS, {"mrn": 17, "name": "Eve", "sex": "F", "date_of_birth": 1990}, format="json")
    assert response.status_code == 400 and response.json() == {"date_of_birth": ["Enter a valid date."]}
    assert api.post(PATIENTS, {"mrn": 17, "name": "Eve", "sex": "F"}, format="json").status_code == 201
    assert Patient.objects.get().mrn == "17"


@pytest.mark.django_db
def test_reading_a_patient_is_audited_as_a_view(api, patient):
    response = api.get(detail(patient))
    assert response.status_code == 200
    assert response.json()["name"] == "Ada Lovelace"
    assert audit_rows() == [("nurse", "view", "patient", patient.pk, "")]
    assert api.get(reverse("api:patient-detail", args=[patient.pk + 1])).status_code == 404


@pytest.mark.django_db
def test_a_partial_change_keeps_the_other_fields_and_is_audited_as_the_edit_page_does(api, patient, staff_client):
    response = api.patch(detail(patient), {"name": "Ada  King"})

    assert response.status_code == 200 and response.json()["name"] == "Ada King"
    patient.refresh_from_db()
    assert (patient.mrn, patient.name, patient.sex) == ("MRN001", "Ada King", "F")
    page_data = {"mrn": "MRN001", "name": "Ada Lovelace", "sex": "F", "date_of_birth": "", "notes": ""}
    staff_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]), page_data)
    assert audit_rows() == [
        ("nurse", "change", "patient", patient.pk, "changed name"),
        ("nurse", "change", "patient", patient.pk, "changed name"),
    ]


@pytest.mark.django_db
def test_a_full_change_needs_every_required_field(api, patient):
    refused = api.put(detail(patient), {"name": "Ada King"})
    assert refused.status_code == 400
    assert refused.json() == {"mrn": ["This field is required."]}  # sex may be left out, as the schema says
    changed = api.put(detail(patient), {"mrn": "MRN001", "name": "Ada King", "sex": "F", "notes": "Left-handed"})
    assert changed.status_code == 200
    patient.refresh_from_db()
    assert (patient.name, patient.notes) == ("Ada King", "Left-handed")
    assert AuditEvent.objects.get().detail == "changed name, notes"


@pytest.mark.django_db
def test_a_change_to_a_taken_record_number_is_refused_and_nothing_saved(api, patient, staff):
    other = Patient.objects.create(mrn="MRN002", name="Alan Turing", created_by=staff)
    response = api.patch(detail(other), {"mrn": "mrn001"})
    assert response.status_code == 409
    assert response.json() == {"mrn": ["Patient with this Medical record number already exists."]}
    other.refresh_from_db()
    assert other.mrn == "MRN002" and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_listing_patients_through_the_api_is_audited_like_the_page(api, patient):
    response = api.get(reverse("api:patient-list"), {"q": "Lovelace"})
    assert response.status_code == 200
    event = AuditEvent.objects.get(object_type="patientlist")
    assert (event.action, event.object_id, event.patient, event.detail) == ("view", 0, None, "API; search 'Lovelace'; page 1")


@pytest.mark.django_db
def test_sex_may_be_left_out_as_the_schema_says(api, patient):
    """The schema has sex optional (default unknown); POST and PUT once required it."""
    created = api.post(PATIENTS, {"mrn": "P-2", "name": "Grace Hopper"})
    assert created.status_code == 201 and created.json()["sex"] == "U"
    changed = api.put(detail(patient), {"mrn": "MRN001", "name": "Ada King"})
    assert changed.status_code == 200 and changed.json()["sex"] == "U"


@pytest.mark.django_db
def test_an_empty_date_of_birth_is_refused_not_read_as_none(api, patient):
    """The schema says a date or null: "" was accepted as null."""
    response = api.post(PATIENTS, {"mrn": "P-2", "name": "Grace Hopper", "date_of_birth": ""})
    assert response.status_code == 400
    assert response.json() == {"date_of_birth": [NO_DATE_MESSAGE]}
    assert api.post(PATIENTS, {"mrn": "P-2", "name": "Grace Hopper", "date_of_birth": None}).status_code == 201


@pytest.mark.django_db
def test_a_taken_record_number_is_a_conflict_the_schema_lists(api, patient):
    response = api.post(PATIENTS, {"mrn": " mrn001 ", "name": "Someone Else"})
    assert response.status_code == 409
    assert response.json() == {"mrn": ["Patient with this Medical record number already exists."]}
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    assert "409" in schema["paths"]["/api/patients/"]["post"]["responses"]
    assert "409" in schema["paths"]["/api/patients/{id}/"]["put"]["responses"]


@pytest.mark.django_db
def test_patients_are_sent_as_json(api):
    response = api.post(PATIENTS, {"mrn": "P-2", "name": "Grace Hopper"}, format="multipart")
    assert response.status_code == 415
