import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from diagnosis.records.models import Patient
from dispredo_site.testing.factories import make_xray


@pytest.mark.django_db
def test_it_registers_a_patient(staff_client, staff):
    response = staff_client.post(
        reverse("diagnosis:patient_create"),
        {"mrn": " ab123 ", "name": "  Alan   Turing ", "sex": "M", "date_of_birth": "1912-06-23", "notes": "Allergic to penicillin"},
    )
    patient = Patient.objects.get()
    assert response.status_code == 302 and response["Location"] == patient.get_absolute_url()
    assert (patient.mrn, patient.name, patient.sex, str(patient.date_of_birth)) == ("ab123", "Alan Turing", "M", "1912-06-23")
    assert patient.created_by == staff


@pytest.mark.django_db
def test_it_rejects_a_duplicate_record_number(staff_client, patient):
    response = staff_client.post(reverse("diagnosis:patient_create"), {"mrn": "mrn001", "name": "Other", "sex": "U"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"mrn": ["Patient with this Medical record number already exists."]}
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_it_edits_a_patient(staff_client, patient):
    response = staff_client.post(
        reverse("diagnosis:patient_edit", args=[patient.pk]), {"mrn": "MRN001", "name": "Ada King", "sex": "F"}
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.name == "Ada King"


@pytest.mark.django_db
def test_search_finds_by_record_number_and_by_name(staff_client, patient):
    Patient.objects.create(mrn="ZZ900", name="Charles Babbage")
    url = reverse("diagnosis:patient_list")
    by_mrn = staff_client.get(url, {"q": "mrn0"})
    assert [p.mrn for p in by_mrn.context["page"]] == ["MRN001"]
    by_name = staff_client.get(url, {"q": "babb"})
    assert [p.name for p in by_name.context["page"]] == ["Charles Babbage"]
    everyone = staff_client.get(url)
    assert [p.name for p in everyone.context["page"]] == ["Ada Lovelace", "Charles Babbage"]
    nobody = staff_client.get(url, {"q": "nobody"})
    assert "No patients found." in nobody.content.decode()


@pytest.mark.django_db
def test_deleting_a_patient_with_xrays_is_refused(staff_client, patient):
    make_xray(patient)
    with pytest.raises(ProtectedError):
        patient.delete()
    response = staff_client.post(reverse("diagnosis:patient_delete", args=[patient.pk]), follow=True)
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert "has X-rays on record and cannot be deleted" in response.content.decode()


@pytest.mark.django_db
def test_deleting_a_patient_without_xrays_works_and_needs_post(staff_client, patient):
    url = reverse("diagnosis:patient_delete", args=[patient.pk])
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url)
    assert response.status_code == 302 and not Patient.objects.exists()


@pytest.mark.django_db
def test_the_patient_page_lists_past_xrays_newest_first(staff_client, patient, tiny_model):
    from datetime import timedelta

    from django.utils import timezone

    old = make_xray(patient, version=tiny_model, flagged={"Edema"}, uploaded_at=timezone.now() - timedelta(days=3))
    new = make_xray(patient, version=tiny_model, flagged={"Mass", "Nodule"})
    response = staff_client.get(patient.get_absolute_url())
    assert [x.pk for x in response.context["page"]] == [new.pk, old.pk]
    assert [f.finding for f in response.context["rows"][1][1].flagged] == ["Edema"]
    html = response.content.decode()
    assert "Edema 90.0%" in html and "Mass 90.0%" in html


@pytest.mark.django_db
def test_an_unknown_patient_is_404(staff_client):
    assert staff_client.get(reverse("diagnosis:patient_detail", args=[999])).status_code == 404
