"""What a DICOM header says about the patient and the study, checked against the records.

Every door shares these rules (``diagnosis.intake.patients`` applies them): which patient a header
names, when it contradicts the chosen patient (the wrong-patient check), and when the image is
already stored. The header's Patient ID is a record number by the rule of ``records.identifiers``.
"""

from diagnosis.records.identifiers import record_number, same_record_number
from diagnosis.records.models import Patient, Sex, XRay

WRONG_PATIENT_MESSAGE = (
    "The DICOM header's Patient ID is {header_id}, but the chosen patient's record number is {mrn}: "
    "check that this X-ray belongs to this patient."
)
DUPLICATE_MESSAGE = "This DICOM image (SOP Instance UID {uid}) is already stored as X-ray {pk} of {patient} ({url})."
AGE_NOTE = "Age {age} at the study of {study} (from the DICOM header; no date of birth recorded)."


def header_of(image):
    """The ``DicomHeader`` carried by an image that ``open_xray`` read from DICOM, else None."""
    return image.info.get("dicom") if getattr(image, "format", None) == "DICOM" else None


def patient_id(header):
    """The header's Patient ID as a record number: as given, without the spaces around it."""
    return record_number(header.patient_id)


def existing_patient(header):
    """The patient whose record number is the header's Patient ID (ignoring case), or None."""
    return Patient.objects.with_record_number(patient_id(header)).first()


def wrong_patient_message(header, mrn):
    """The refusal when the header names another patient than the record number ``mrn``, else None."""
    if patient_id(header) and record_number(mrn) and not same_record_number(patient_id(header), mrn):
        return WRONG_PATIENT_MESSAGE.format(header_id=patient_id(header), mrn=record_number(mrn))
    return None


def duplicate_message(header):
    """The refusal when an X-ray with this SOP Instance UID is stored already, else None."""
    if not header.sop_instance_uid:
        return None
    xray = XRay.objects.filter(sop_instance_uid=header.sop_instance_uid).select_related("patient").first()
    if xray is None:
        return None
    return DUPLICATE_MESSAGE.format(uid=header.sop_instance_uid, pk=xray.pk, patient=xray.patient, url=xray.get_absolute_url())


def new_patient_fields(header):
    """Fields of a new patient from the header: record number, name, sex, date of birth, and the
    age in the notes when only the age is known (Patient has no age field)."""
    sex = header.patient_sex if header.patient_sex in (Sex.MALE, Sex.FEMALE, Sex.OTHER) else Sex.UNKNOWN
    notes = ""
    if header.patient_birth_date is None and header.patient_age:
        study = header.study_date.isoformat() if header.study_date else "unknown date"
        notes = AGE_NOTE.format(age=_age_text(header.patient_age), study=study)
    return {
        "mrn": patient_id(header),
        "name": header.patient_name or patient_id(header),
        "sex": sex,
        "date_of_birth": header.patient_birth_date,
        "notes": notes,
    }


def study_fields(header):
    """The XRay fields kept from the header."""
    return {
        "study_date": header.study_date,
        "accession_number": header.accession_number,
        "study_instance_uid": header.study_instance_uid,
        "sop_instance_uid": header.sop_instance_uid,
    }


def _age_text(age):
    """DICOM Age String (e.g. 054Y, 006M) as words; anything else as written."""
    units = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}
    text = age.strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] in units:
        return f"{int(text[:3])} {units[text[3]]}"
    if text.isdigit():
        return f"{int(text)} years"
    return age.strip()
