"""FHIR R4 output of a scored X-ray (diagnosis.interop.fhir).

Validated with fhir.resources 8.3.0, whose models are R5 (the root package), R4B (4.3.0) and STU3:
there are no 4.0.1 models, so the R4B ones stand in for R4; the elements used here (Bundle,
DiagnosticReport, Observation, Patient, Device, Provenance) are the same in both. The library checks
structure, cardinality and data types, not code bindings or reference targets: those are
asserted here.
"""

import datetime
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.provenance import Provenance
from PIL import Image

from diagnosis.interop.fhir import FhirUnavailable, diagnostic_report_bundle
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Prediction, XRay, XRayStatus
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.helpers import upload_file
from dispredo_site.testing.tiny_model import build_tiny_artefact

MODELS = {
    "DiagnosticReport": DiagnosticReport,
    "Observation": Observation,
    "Patient": FhirPatient,
    "Device": Device,
    "Provenance": Provenance,
}
SNOMED = "http://snomed.info/sct"
LOCAL_FINDING = "urn:dispredo:finding"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# The codes, written out again here so that a change to the module's table fails a test.
EXPECTED_SNOMED = {
    "Atelectasis": "46621007",
    "Consolidation": "95436008",
    "Infiltration": "409609008",
    "Pneumothorax": "36118008",
    "Edema": "19242006",
    "Emphysema": "87433001",
    "Fibrosis": "51615001",
    "Effusion": "60046008",
    "Pneumonia": "233604007",
    "Pleural_Thickening": None,
    "Cardiomegaly": "8186001",
    "Nodule": "786838002",
    "Mass": "309529002",
    "Hernia": "84089009",
}
ISSUED = datetime.datetime(2026, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)

# The mixed model scores every finding 0.5: flagged where the threshold is 0.25 and the finding is
# reliable; Hernia clears its threshold too, but is not reliable, so it is not flagged.
LOW_THRESHOLD = {"Effusion", "Edema", "Hernia"}
UNRELIABLE = ("Hernia", "Mass")


def png(tmp_path, name="scan.png", size=64, grey=128):
    path = tmp_path / name
    Image.new("L", (size, size), grey).save(path)
    return path


def upload(client, path, patient):
    response = upload_file(client, path, patient)
    assert response.status_code == 200
    xray = patient.xrays.get()
    assert xray.status == XRayStatus.DONE
    return xray


@pytest.fixture
def mixed_model(db, tmp_path):
    thresholds = {name: 0.25 if name in LOW_THRESHOLD else 0.75 for name in FINDINGS}
    build_tiny_artefact(
        tmp_path / "mixed", name="mixed-test-model", response="constant", thresholds=thresholds, unreliable=UNRELIABLE
    )
    return register_model_version(tmp_path / "mixed", activate=True)


@pytest.fixture
def mixed_xray(staff_client, patient, mixed_model, tmp_path):
    return upload(staff_client, png(tmp_path), patient)


def entries(bundle, kind):
    return [entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == kind]


def observations_by_finding(bundle):
    return {
        next(c["code"] for c in o["code"]["coding"] if c["system"] == LOCAL_FINDING): o
        for o in entries(bundle, "Observation")
    }


def component(observation, code):
    (found,) = [c for c in observation["component"] if c["code"]["coding"][0]["code"] == code]
    return found


def test_the_bundle_and_every_resource_in_it_validate_as_fhir_r4(staff_client, patient, tiny_model, tmp_path):
    xray = upload(staff_client, png(tmp_path), patient)
    bundle = diagnostic_report_bundle(xray)

    assert json.loads(json.dumps(bundle)) == bundle
    assert Bundle.model_validate(bundle).type == "collection"
    for entry in bundle["entry"]:
        MODELS[entry["resource"]["resourceType"]].model_validate(entry["resource"])
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds == ["DiagnosticReport"] + ["Observation"] * 14 + ["Patient", "Device", "Provenance"]
    urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(urls)) == len(urls) and all(url.startswith("urn:uuid:") for url in urls)


def test_every_reference_resolves_inside_the_bundle_to_a_type_r4_allows_there(mixed_xray):
    bundle = diagnostic_report_bundle(mixed_xray)
    kind_of = {entry["fullUrl"]: entry["resource"]["resourceType"] for entry in bundle["entry"]}
    (report,) = entries(bundle, "DiagnosticReport")
    (provenance,) = entries(bundle, "Provenance")

    assert kind_of[report["subject"]["reference"]] == "Patient"
    assert [kind_of[r["reference"]] for r in report["result"]] == ["Observation"] * 14
    assert "performer" not in report  # R4 allows no Device there: the Provenance names it
    for observation in entries(bundle, "Observation"):
        assert kind_of[observation["subject"]["reference"]] == "Patient"
        assert kind_of[observation["device"]["reference"]] == "Device"
    assert [kind_of[t["reference"]] for t in provenance["target"]] == ["DiagnosticReport"] + ["Observation"] * 14
    assert kind_of[provenance["agent"][0]["who"]["reference"]] == "Device"
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "performer"


def test_the_report_is_a_preliminary_radiology_chest_x_ray_coded_with_loinc_36554_4(mixed_xray):
    bundle = diagnostic_report_bundle(mixed_xray, issued=ISSUED)
    (report,) = entries(bundle, "DiagnosticReport")

    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
    ]
    assert report["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "36554-4", "display": "XR Chest Single view"}
    ]
    assert [r["display"] for r in report["result"]] == [name.replace("_", " ").capitalize() for name in FINDINGS]
    assert report["issued"] == bundle["timestamp"] == "2026-05-06T07:08:09+00:00"
    assert report["conclusion"] == (
        "Flagged by the model for a clinician to check: Edema, Effusion. "
        "Low resolution: this image is 64×64 pixels, under 256 on its short side. The model sees less fine detail "
        "than it was trained on; score the original image where you have it. "
        "Not reliable with this model, so never flagged: Mass, Hernia. "
        "Research use only: not for clinical diagnosis. Results support, never replace, a clinician's reading."
    )


def test_each_finding_is_coded_in_snomed_ct_where_a_code_exists_and_always_by_its_nih_name(mixed_xray):
    observations = observations_by_finding(diagnostic_report_bundle(mixed_xray))

    assert list(observations) == list(FINDINGS)
    for name, observation in observations.items():
        assert observation["status"] == "preliminary"
        assert observation["category"][0]["coding"][0]["code"] == "imaging"
        snomed = [c["code"] for c in observation["code"]["coding"] if c["system"] == SNOMED]
        assert snomed == ([EXPECTED_SNOMED[name]] if EXPECTED_SNOMED[name] else []), name
        assert observation["code"]["coding"][-1] == {
            "system": LOCAL_FINDING, "code": name, "display": name.replace("_", " ").capitalize()
        }


def test_scores_and_thresholds_are_the_stored_prediction_and_model_version_values(mixed_xray, mixed_model):
    observations = observations_by_finding(diagnostic_report_bundle(mixed_xray))

    for prediction in Prediction.objects.filter(xray=mixed_xray):
        observation = observations[prediction.finding]
        assert observation["valueQuantity"] == {
            "value": prediction.probability, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"
        }
        threshold = component(observation, "threshold")["valueQuantity"]["value"]
        assert threshold == mixed_model.thresholds[prediction.finding]
        assert component(observation, "flagged")["valueBoolean"] is prediction.flagged
    assert observations["Effusion"]["valueQuantity"]["value"] == 0.5


def test_only_flagged_findings_carry_an_interpretation_and_not_flagged_is_not_negative(mixed_xray):
    observations = observations_by_finding(diagnostic_report_bundle(mixed_xray))
    flagged = set(Prediction.objects.filter(xray=mixed_xray, flagged=True).values_list("finding", flat=True))

    assert flagged == {"Effusion", "Edema"}
    for name, observation in observations.items():
        if name in flagged:
            assert observation["interpretation"][0]["coding"] == [
                {"system": INTERPRETATION, "code": "HX", "display": "above high threshold"}
            ]
        else:
            assert "interpretation" not in observation, name
    assert observations["Atelectasis"]["note"][0]["text"] == (
        "Not flagged: the score is below this model's threshold. This does not rule the finding out."
    )
    # Above its threshold, but not reliable: no flag, and a note that says why.
    hernia = observations["Hernia"]
    assert hernia["valueQuantity"]["value"] > component(hernia, "threshold")["valueQuantity"]["value"]
    assert component(observations["Hernia"], "reliable")["valueBoolean"] is False
    assert observations["Hernia"]["note"][0]["text"].startswith("Not reliable with this model")


def test_reliability_is_the_default_models_auroc_on_unseen_patients_and_its_interval(
    staff_client, patient, default_model, sample_images
):
    xray = upload(staff_client, sample_images["gray_1024"], patient)
    observations = observations_by_finding(diagnostic_report_bundle(xray))

    assert default_model.reliable_findings() and len(default_model.reliable_findings()) < 14
    for name, observation in observations.items():
        figures = default_model.reliability["findings"][name]
        assert component(observation, "auroc")["valueQuantity"]["value"] == figures["auroc"]
        interval = component(observation, "auroc-interval")
        assert interval["code"]["text"] == "AUROC on unseen patients, 95 % interval"
        assert interval["valueRange"]["low"]["value"] == figures["low"]
        assert interval["valueRange"]["high"]["value"] == figures["high"]
        assert component(observation, "reliable")["valueBoolean"] is figures["reliable"]
        assert component(observation, "threshold")["valueQuantity"]["value"] == default_model.thresholds[name]


def test_the_patient_carries_the_record_number_under_the_configured_base(settings, mixed_xray, patient):
    patient.date_of_birth = datetime.date(1815, 12, 10)
    patient.save()
    (resource,) = entries(diagnostic_report_bundle(XRay.objects.get(pk=mixed_xray.pk)), "Patient")

    assert resource["identifier"][0]["system"] == "urn:dispredo:mrn"
    assert resource["identifier"][0]["value"] == "MRN001"
    assert resource["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert resource["name"] == [{"text": "Ada Lovelace"}]
    assert (resource["gender"], resource["birthDate"]) == ("female", "1815-12-10")

    settings.DISPREDO_FHIR_BASE = "https://clinic.example/fhir/"
    bundle = diagnostic_report_bundle(mixed_xray)
    (resource,) = entries(bundle, "Patient")
    assert resource["identifier"][0]["system"] == "https://clinic.example/fhir/mrn"
    assert entries(bundle, "Observation")[0]["code"]["coding"][-1]["system"] == "https://clinic.example/fhir/finding"


def test_a_base_that_is_neither_a_urn_nor_a_url_is_refused(settings, mixed_xray):
    settings.DISPREDO_FHIR_BASE = "dispredo clinic"
    with pytest.raises(ImproperlyConfigured) as raised:
        diagnostic_report_bundle(mixed_xray)
    assert str(raised.value) == "DISPREDO_FHIR_BASE must be a URN (urn:...) or an http(s) URL, not 'dispredo clinic'."


def test_the_device_is_the_model_version_with_the_research_use_notice(mixed_xray, mixed_model):
    (device,) = entries(diagnostic_report_bundle(mixed_xray), "Device")

    assert device["version"][0]["value"] == mixed_model.name == "mixed-test-model"
    assert {"name": "mixed-test-model", "type": "model-name"} in device["deviceName"]
    assert device["identifier"] == [{"system": "urn:dispredo:model-version", "value": "mixed-test-model"}]
    assert device["status"] == "active"
    assert device["note"][0]["text"].startswith("Research use only: not for clinical diagnosis.")


def test_a_dicom_study_is_referenced_by_its_uid_and_dated_by_its_study_date(mixed_xray):
    XRay.objects.filter(pk=mixed_xray.pk).update(
        study_instance_uid="1.2.826.0.1.3680043.8.498.1", study_date=datetime.date(2026, 4, 1), accession_number="ACC42"
    )
    bundle = diagnostic_report_bundle(XRay.objects.get(pk=mixed_xray.pk))
    (report,) = entries(bundle, "DiagnosticReport")
    uid = {"system": "urn:dietf:rfc:3986", "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}
    study = {"type": "ImagingStudy", "identifier": uid}

    assert report["imagingStudy"] == [study]
    assert report["effectiveDateTime"] == "2026-04-01"
    accession = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN", "display": "Accession ID"}
    assert {"type": {"coding": [accession]}, "value": "ACC42"} in report["identifier"]
    for observation in entries(bundle, "Observation"):
        assert observation["derivedFrom"] == [study]
        assert observation["effectiveDateTime"] == "2026-04-01"
    Bundle.model_validate(bundle)


def test_without_a_study_the_upload_time_is_the_effective_time_and_no_study_is_named(mixed_xray):
    uploaded = datetime.datetime(2026, 3, 2, 1, 0, tzinfo=datetime.timezone.utc)
    XRay.objects.filter(pk=mixed_xray.pk).update(uploaded_at=uploaded)
    bundle = diagnostic_report_bundle(XRay.objects.get(pk=mixed_xray.pk))
    (report,) = entries(bundle, "DiagnosticReport")

    assert report["effectiveDateTime"] == "2026-03-02T01:00:00+00:00"
    assert "imagingStudy" not in report
    assert not any("derivedFrom" in o for o in entries(bundle, "Observation"))


def test_the_same_x_ray_gives_the_same_resource_ids_and_another_gives_others(
    mixed_xray, staff_client, patient, tmp_path
):
    first = [e["fullUrl"] for e in diagnostic_report_bundle(mixed_xray)["entry"]]
    assert [e["fullUrl"] for e in diagnostic_report_bundle(mixed_xray)["entry"]] == first

    upload_file(staff_client, png(tmp_path, "other.png", grey=90), patient)
    other = patient.xrays.exclude(pk=mixed_xray.pk).get()
    second = [e["fullUrl"] for e in diagnostic_report_bundle(other)["entry"]]
    assert set(first) & set(second) == {first[-3], first[-2]}  # the same Patient and Device


def test_a_pending_x_ray_has_no_report(patient):
    xray = make_xray(patient)
    with pytest.raises(FhirUnavailable) as raised:
        diagnostic_report_bundle(xray)
    assert str(raised.value) == (
        f"X-ray {xray.pk} has no FHIR report. Pending: no model was installed when this X-ray was uploaded, and "
        "none is active now. It is scored once a model version is active (manage.py rescore)."
    )
    assert raised.value.reason == "no_active_model"


def test_a_failed_or_incomplete_x_ray_has_no_report(patient, tiny_model):
    failed = make_xray(patient, status=XRayStatus.FAILED)
    with pytest.raises(FhirUnavailable) as raised:
        diagnostic_report_bundle(failed)
    assert str(raised.value) == (
        f"X-ray {failed.pk} has no FHIR report. The model could not score this X-ray. "
        "Score it again with manage.py rescore --failed."
    )
    assert raised.value.reason == "scoring_failed"

    partial = make_xray(patient, version=tiny_model)
    partial.predictions.filter(finding="Hernia").delete()
    with pytest.raises(FhirUnavailable) as raised:
        diagnostic_report_bundle(partial)
    assert raised.value.reason == "incomplete"
    assert str(raised.value) == (
        f"X-ray {partial.pk} has no FHIR report. The stored scores of this X-ray are incomplete (not one per finding "
        "from one model version), so none is shown. Score it again with manage.py rescore."
    )
