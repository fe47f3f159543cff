"""Which patient an incoming X-ray belongs to, whatever the door.

In order: a patient chosen on the form; else a new patient typed on it (its blank fields filled
from a DICOM header); else, with neither, the patient a DICOM header names (found by its Patient
ID, or registered from the header). A chosen or typed patient whose record number a DICOM header
contradicts is refused (the wrong-patient check). A new patient, typed or from a header, is cleaned
and checked by the one patient validator (``records.forms.PatientForm``), so every door registers
patients alike.
"""

from dataclasses import dataclass

from diagnosis.intake import dicom_records
from diagnosis.intake.submissions import Refusal
from diagnosis.records.forms import PatientForm
from diagnosis.records.models import Sex

NO_PATIENT_MESSAGE = "Choose a patient, or enter a new patient's record number and name."
NO_PATIENT_ID_MESSAGE = "This DICOM image has no Patient ID."
NEW_FIELDS = ("mrn", "name", "sex", "date_of_birth")


@dataclass(frozen=True)
class Resolved:
    """The patient to store the X-ray under: a saved row, or a new one (unsaved, ``new``)."""

    patient: object
    new: bool


def resolve(incoming, header):
    """``Resolved``, or a list of ``Refusal``s (on the form's patient fields where they belong)."""
    if incoming.patient is not None:
        wrong = header and dicom_records.wrong_patient_message(header, incoming.patient.mrn)
        return [Refusal("wrong_patient", wrong, "patient")] if wrong else Resolved(incoming.patient, new=False)
    typed = {name: incoming.new_patient.get(name) for name in NEW_FIELDS if incoming.new_patient.get(name)}
    if typed.get("mrn") or typed.get("name"):
        return _typed_patient(typed, header, incoming.user)
    if header is None:
        return [Refusal("no_patient", NO_PATIENT_MESSAGE)]
    existing = dicom_records.existing_patient(header)
    if existing is not None:
        return Resolved(existing, new=False)
    fields = dicom_records.new_patient_fields(header)
    if not fields["mrn"]:
        return [Refusal("no_patient_id", NO_PATIENT_ID_MESSAGE, None if incoming.source == "dicom" else "patient")]
    return _new_patient(fields, incoming.user, prefix="")


def _typed_patient(typed, header, user):
    """A new patient from the typed fields; a DICOM header fills the blank ones and must agree."""
    notes = ""
    if header is not None:
        wrong = dicom_records.wrong_patient_message(header, typed.get("mrn", ""))
        if wrong:
            return [Refusal("wrong_patient", wrong, "new_mrn")]
        from_header = dicom_records.new_patient_fields(header)
        notes = from_header.pop("notes")
        if typed.get("sex") in (None, "", Sex.UNKNOWN):
            typed.pop("sex", None)
        typed = {**{name: value for name, value in from_header.items() if value}, **typed}
    return _new_patient({**typed, "notes": notes}, user, prefix="new_")


def _new_patient(fields, user, prefix):
    """An unsaved patient made of ``fields`` by ``PatientForm``'s rules, or its refusals (on the
    fields ``prefix`` names: "new_mrn" on the upload form; none for a header's fields)."""
    form = PatientForm(data={"sex": Sex.UNKNOWN, **{name: value for name, value in fields.items() if value is not None}})
    if form.is_valid():
        patient = form.save(commit=False)
        patient.created_by = user
        return Resolved(patient, new=True)
    return [
        Refusal(error.code or "invalid", message, f"{prefix}{name}" if prefix and name != "__all__" else None)
        for name, errors in form.errors.as_data().items()
        for error in errors
        for message in error.messages
    ]
