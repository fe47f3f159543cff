"""What a DICOM header says about the patient and the study, checked against the records.

The upload form and the DICOM receiver share these rules: which patient a header names, when it
contradicts the chosen patient (the wrong-patient check), and when the image is already stored.
"""

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


def normalised_id(header):
    """The header's Patient ID as a record number is written (trimmed, upper case)."""
    return header.patient_id.strip().upper()


def existing_patient(header):
    """The patient whose record number is the header's Patient ID, or None."""
    mrn = normalised_id(header)
    return Patient.objects.filter(mrn=mrn).first() if mrn else None


def wrong_patient_message(header, patient):
    """The refusal when the header names another patient than ``patient``, else None."""
    mrn = normalised_id(header)
    if mrn and patient.mrn and mrn != patient.mrn.strip().upper():
        return WRONG_PATIENT_MESSAGE.format(header_id=header.patient_id, mrn=patient.mrn)
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
        "mrn": normalised_id(header),
        "name": header.patient_name or normalised_id(header),
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
