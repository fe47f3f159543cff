"""A scored X-ray as FHIR R4: one Bundle a RIS or EHR can take in.

``diagnostic_report_bundle(xray)`` returns a JSON-ready dict, a Bundle of type "collection" with:

- one DiagnosticReport (status "preliminary": the model's output, never a signed-off reading),
  LOINC 36554-4 "XR Chest Single view" (``fhir_codes.report_code``), whose results are
- one Observation per finding (14): the probability, the threshold, whether it is flagged, and
  how reliable the finding is with this model (AUROC on unseen patients and its interval),
- the Patient, the model version as a Device, and a Provenance naming that Device as the one that
  produced the report (R4's DiagnosticReport.performer cannot be a Device).

"collection", not "document": a document needs a Composition and stands for an attested clinical
document, which a preliminary machine output is not; a collection asks nothing of the receiver, who
may store the resources as they are or post them as a transaction.

What it reports is the X-ray's result (``diagnosis.records.results``): scores only when its last
scoring succeeded, and a conclusion that carries the result's caveats (guard override, low
resolution, findings not reliable with the model) in the words the pages use.

Not flagged is not negative: an Observation carries an interpretation only when flagged, and says
in its note what its score does and does not mean. Every fullUrl is a ``urn:uuid:`` derived from
``DISPREDO_FHIR_BASE`` and the row, so the same X-ray gives the same resource ids each time.
"""

from django.utils import timezone

from diagnosis.interop.fhir_codes import (
    CHEST_XRAY,
    DICOM_UID,
    FLAGGED,
    GENDERS,
    OBSERVATION_CATEGORY,
    PROVENANCE_AGENT,
    RESEARCH_NOTICE,
    SNOMED,
    SNOMED_CODES,
    UCUM,
    V2_0074,
    V2_0203,
    full_url,
    system,
)
from diagnosis.records.results import result_of
from dispredo_core.findings import DISPLAY_NAMES


class FhirUnavailable(Exception):
    """The X-ray's result has no scores to report; ``reason`` is the code of the caveat that says
    why (``diagnosis.records.results``: pending, no_active_model, being_scored, scoring_failed or
    incomplete), and the message carries that caveat's message.

    For the API a 409: the X-ray exists, its report does not (yet)."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


def instant(moment):
    return timezone.localtime(moment, timezone.get_fixed_timezone(0)).isoformat(timespec="seconds")


def ratio(value):
    """A unitless number (probability, threshold, AUROC) as a UCUM "1" quantity."""
    return {"value": float(value), "unit": "1", "system": UCUM, "code": "1"}


def study_reference(xray):
    """A logical reference to the DICOM study, by its Study Instance UID (None without one)."""
    if not xray.study_instance_uid:
        return None
    return {
        "type": "ImagingStudy",
        "identifier": {"system": DICOM_UID, "value": f"urn:oid:{xray.study_instance_uid}"},
    }


def scored_result(xray):
    """The X-ray's ``Result`` with its 14 findings, or ``FhirUnavailable`` with the caveat that says why not."""
    result = result_of(xray)
    if not result.scored:
        caveat = result.status_caveat
        raise FhirUnavailable(f"X-ray {xray.pk} has no FHIR report. {caveat.message}", caveat.code)
    return result


def patient_resource(patient):
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": system("mrn"),
                "value": patient.mrn,
            }
        ],
        "name": [{"text": patient.name}],
        "gender": GENDERS.get(patient.sex, "unknown"),
    }
    if patient.date_of_birth:
        resource["birthDate"] = patient.date_of_birth.isoformat()
    return resource


def device_resource(version):
    return {
        "resourceType": "Device",
        "identifier": [{"system": system("model-version"), "value": version.name}],
        "status": "active" if version.is_active else "inactive",
        "deviceName": [
            {"name": "Dispredo", "type": "user-friendly-name"},
            {"name": version.name, "type": "model-name"},
        ],
        "type": {"text": "Chest X-ray finding classifier (software, 14 NIH ChestX-ray14 findings)"},
        "version": [{"type": {"text": "model version"}, "value": version.name}],
        "note": [{"text": RESEARCH_NOTICE}],
    }


def finding_code(finding):
    """SNOMED CT where a confirmed concept exists, always the local NIH finding name, and its text."""
    codings = []
    if finding in SNOMED_CODES:
        code, display = SNOMED_CODES[finding]
        codings.append({"system": SNOMED, "code": code, "display": display})
    codings.append({"system": system("finding"), "code": finding, "display": DISPLAY_NAMES[finding]})
    return {"coding": codings, "text": DISPLAY_NAMES[finding]}


def measure(code, display, text=None):
    """A local component code; ``text`` adds this version's figure (level, floor) to the display."""
    return {"coding": [{"system": system("measure"), "code": code, "display": display}], "text": text or display}


def reliability_components(finding, version):
    """The finding's AUROC on unseen patients, its interval and whether it is reliable (only the
    figures this model version carries)."""
    figures = finding.reliability
    components = []
    if figures.get("auroc") is not None:
        components.append(
            {"code": measure("auroc", "AUROC on unseen patients"), "valueQuantity": ratio(figures["auroc"])}
        )
    if figures.get("low") is not None and figures.get("high") is not None:
        level = (version.reliability or {}).get("level", 0.95)
        components.append(
            {
                "code": measure(
                    "auroc-interval",
                    "AUROC on unseen patients, interval",
                    f"AUROC on unseen patients, {level * 100:g} % interval",
                ),
                "valueRange": {"low": ratio(figures["low"]), "high": ratio(figures["high"])},
            }
        )
    floor = (version.reliability or {}).get("floor")
    display = "Reliable with this model"
    text = f"{display} (AUROC interval's lower end at least {floor:g})" if floor is not None else None
    components.append({"code": measure("reliable", display, text), "valueBoolean": finding.reliable})
    return components


def observation_note(finding):
    if finding.flagged:
        return (
            "Flagged: the score is at or above this model's threshold for the finding, which is reliable "
            "with this model. A prompt for a clinician to check, not a diagnosis."
        )
    if finding.reliable:
        return "Not flagged: the score is below this model's threshold. This does not rule the finding out."
    return (
        "Not reliable with this model (its AUROC on unseen patients is not shown to clearly beat chance), "
        "so never flagged; the score rules the finding neither in nor out."
    )


def observation_resource(finding, result, xray, urls, *, effective, issued):
    resource = {
        "resourceType": "Observation",
        "status": "preliminary",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "code": finding_code(finding.finding),
        "subject": {"reference": urls["patient"]},
        "effectiveDateTime": effective,
        "issued": issued,
        "valueQuantity": ratio(finding.probability),
        "note": [{"text": observation_note(finding)}],
        "method": {"text": "Model score from 0 to 1: how likely the finding would be reported on an image like this"},
        "device": {"reference": urls["device"]},
        "component": [
            {"code": measure("threshold", "Flag threshold"), "valueQuantity": ratio(finding.threshold)},
            {"code": measure("flagged", "Flagged by the model"), "valueBoolean": finding.flagged},
            *reliability_components(finding, result.model_version),
        ],
    }
    if finding.flagged:
        resource["interpretation"] = [{"coding": [FLAGGED], "text": "Flagged by the model"}]
    if xray.study_instance_uid:
        resource["derivedFrom"] = [study_reference(xray)]
    return resource


def conclusion(result):
    """The flagged findings, then the result's caveats (guard override, low resolution, findings not
    reliable with this model), then the research-use notice."""
    if result.flagged:
        text = "Flagged by the model for a clinician to check: " + ", ".join(f.display_name for f in result.flagged) + "."
    else:
        text = "No finding flagged by the model; this does not rule any finding out."
    return " ".join([text, *(caveat.message for caveat in result.caveats), RESEARCH_NOTICE])


def report_identifiers(xray, version):
    identifiers = [{"system": system("diagnostic-report"), "value": f"{xray.pk}/{version.name}"}]
    if xray.accession_number:
        accession = {"coding": [{"system": V2_0203, "code": "ACSN", "display": "Accession ID"}]}
        identifiers.append({"type": accession, "value": xray.accession_number})
    return identifiers


def diagnostic_report_bundle(xray, issued=None):
    """A JSON-ready FHIR R4 Bundle of ``xray``'s model output (see the module docstring).

    ``issued`` (default: now) is when this report is made: flags follow the model version's
    current operating point, so the report is as of the moment it is asked for. Raises
    ``FhirUnavailable`` for an X-ray whose result has no scores."""
    result = scored_result(xray)
    version = result.model_version
    patient = xray.patient
    issued = instant(issued or timezone.now())
    # The result's study date; where that is the upload's, the upload's moment, which FHIR can hold.
    effective = instant(result.uploaded_at) if result.study_date_is_upload else result.study_date.isoformat()
    run = f"{xray.pk}/{version.name}"  # a version's name is unique
    urls = {
        "report": full_url("DiagnosticReport", run),
        "patient": full_url("Patient", patient.pk),
        "device": full_url("Device", version.name),
        "provenance": full_url("Provenance", run),
    }
    observations = [
        (
            full_url("Observation", f"{run}/{f.finding}"),
            observation_resource(f, result, xray, urls, effective=effective, issued=issued),
        )
        for f in result.findings
    ]
    report = {
        "resourceType": "DiagnosticReport",
        "identifier": report_identifiers(xray, version),
        "status": "preliminary",
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [CHEST_XRAY], "text": "Chest X-ray"},
        "subject": {"reference": urls["patient"]},
        "effectiveDateTime": effective,
        "issued": issued,
        "result": [{"reference": url, "display": o["code"]["text"]} for url, o in observations],
        "conclusion": conclusion(result),
    }
    if xray.study_instance_uid:
        report["imagingStudy"] = [study_reference(xray)]
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": urls["report"]}, *({"reference": url} for url, _ in observations)],
        "recorded": issued,
        "agent": [
            {
                "type": {"coding": [{"system": PROVENANCE_AGENT, "code": "performer", "display": "Performer"}]},
                "who": {"reference": urls["device"], "display": f"Dispredo model {version.name}"},
            }
        ],
    }
    resources = [
        (urls["report"], report),
        *observations,
        (urls["patient"], patient_resource(patient)),
        (urls["device"], device_resource(version)),
        (urls["provenance"], provenance),
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": issued,
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in resources],
    }
