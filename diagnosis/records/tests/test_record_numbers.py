"""The one record-number rule: kept as given without the spaces around it, matched ignoring case,
unique ignoring case (in the form and in the database)."""

import pytest
from django.db import IntegrityError, transaction

from diagnosis.records.forms import TAKEN_MESSAGE, PatientForm
from diagnosis.records.identifiers import record_number, same_record_number
from diagnosis.records.models import Patient


def test_a_record_number_is_kept_as_given_without_the_spaces_around_it():
    assert record_number("  abc-77\t") == "abc-77"
    assert record_number("AB 12") == "AB 12"  # inner spaces are part of it
    assert record_number(None) == ""


def test_matching_ignores_case_but_not_inner_characters():
    assert same_record_number("abc-77", " ABC-77 ")
    assert not same_record_number("abc-77", "abc77")
    assert not same_record_number("AB 12", "AB12")


@pytest.mark.django_db
def test_the_patient_form_stores_it_as_given_and_refuses_it_in_another_case():
    form = PatientForm(data={"mrn": " abc-77 ", "name": "Jane  Doe", "sex": "F"})
    assert form.is_valid(), form.errors
    patient = form.save()
    assert (patient.mrn, patient.name) == ("abc-77", "Jane Doe")

    again = PatientForm(data={"mrn": "ABC-77", "name": "Someone Else", "sex": "U"})
    assert not again.is_valid() and again.errors == {"mrn": [TAKEN_MESSAGE]}
    # Editing the patient keeps its own record number (and may change its case).
    edit = PatientForm(data={"mrn": "ABC-77", "name": "Jane Doe", "sex": "F"}, instance=patient)
    assert edit.is_valid(), edit.errors


@pytest.mark.django_db
def test_lookup_by_record_number_ignores_case_and_takes_no_wildcards():
    patient = Patient.objects.create(mrn="ab_1%", name="A")
    assert list(Patient.objects.with_record_number(" AB_1% ")) == [patient]
    assert not Patient.objects.with_record_number("abx1%").exists()
    assert not Patient.objects.with_record_number("").exists()


@pytest.mark.django_db
def test_the_database_refuses_a_record_number_differing_only_in_case():
    Patient.objects.create(mrn="abc-77", name="A")
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(mrn="ABC-77", name="B")
