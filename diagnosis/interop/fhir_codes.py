"""The code systems and codes of Dispredo's FHIR output (``diagnosis.interop.fhir``), and its own
identifier systems and resource ids under ``DISPREDO_FHIR_BASE``."""

import re
import uuid

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_BASE = "urn:dispredo"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DICOM_UID = "urn:dietf:rfc:3986"  # identifier system of a DICOM UID written as urn:oid:
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PROVENANCE_AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

RESEARCH_NOTICE = (
    "Research use only: not for clinical diagnosis. Results support, never replace, a clinician's reading."
)
# The DiagnosticReport's LOINC code by the number of views it reads: LOINC codes a chest X-ray
# study by its views, and coding one film as "2 Views" tells a receiver a lateral was taken too.
REPORT_CODES = {
    1: {"system": LOINC, "code": "36554-4", "display": "XR Chest Single view"},
    2: {"system": LOINC, "code": "36643-5", "display": "XR Chest 2 Views"},
}
# The model reads one frontal film per upload (PA or AP).
VIEWS_PER_REPORT = 1


def report_code(views):
    """The LOINC coding of a chest X-ray report that reads ``views`` films."""
    try:
        return dict(REPORT_CODES[views])
    except KeyError:
        raise ValueError(f"No report code for {views!r} views: Dispredo codes 1 or 2.") from None


# The code of every report today (diagnosis.interop.fhir): one frontal film.
CHEST_XRAY = report_code(VIEWS_PER_REPORT)

# SNOMED CT concept of each NIH finding (code, preferred term). Each code was found with this
# meaning in at least two public sources that agree (SNOMED CT browser pages, the UMLS, OHDSI
# concept tables, HL7 and IHE implementation guide examples, other projects' mapping tables), not
# in a licensed SNOMED CT release. Codes in circulation that turned out wrong are not used:
# 126952004 is "Neoplasm of brain", not a lung mass; 427359005 is a *solitary* lung nodule, narrower
# than the NIH label. Pleural thickening has no entry: the sources gave three different codes
# (7890003, 78381009, 196121004) and none could be confirmed, so it carries only the local code.
# NIH "Hernia" is, on a chest X-ray, almost always a hiatal hernia, hence 84089009.
SNOMED_CODES = {
    "Atelectasis": ("46621007", "Atelectasis"),
    "Consolidation": ("95436008", "Lung consolidation"),
    "Infiltration": ("409609008", "Radiologic infiltrate of lung"),
    "Pneumothorax": ("36118008", "Pneumothorax"),
    "Edema": ("19242006", "Pulmonary edema"),
    "Emphysema": ("87433001", "Pulmonary emphysema"),
    "Fibrosis": ("51615001", "Fibrosis of lung"),
    "Effusion": ("60046008", "Pleural effusion"),
    "Pneumonia": ("233604007", "Pneumonia"),
    "Cardiomegaly": ("8186001", "Cardiomegaly"),
    "Nodule": ("786838002", "Pulmonary nodule"),
    "Mass": ("309529002", "Lung mass"),
    "Hernia": ("84089009", "Hiatal hernia"),
}

# "Above high threshold": a score at or above a protocol's cut-off, the meaning of a flag. It is
# the only interpretation given; a finding that is not flagged has none (see its note).
FLAGGED = {"system": INTERPRETATION, "code": "HX", "display": "above high threshold"}
GENDERS = {"F": "female", "M": "male", "O": "other", "U": "unknown"}


def base():
    """``DISPREDO_FHIR_BASE`` without a trailing separator; a URN or an http(s) URL."""
    value = str(getattr(settings, "DISPREDO_FHIR_BASE", "") or DEFAULT_BASE)
    if not re.fullmatch(r"urn:[A-Za-z0-9][A-Za-z0-9-]*(:\S*)?|https?://[^\s/]+\S*", value):
        raise ImproperlyConfigured(f"DISPREDO_FHIR_BASE must be a URN (urn:...) or an http(s) URL, not {value!r}.")
    return value.rstrip("/:")


def system(name):
    """A local code or identifier system under ``DISPREDO_FHIR_BASE`` (a URN or a URL)."""
    root = base()
    return f"{root}:{name}" if root.startswith("urn:") else f"{root}/{name}"


def full_url(kind, key):
    """The stable ``urn:uuid:`` of one resource, from the base, its kind and its row."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{base()}/{kind}/{key}").urn
