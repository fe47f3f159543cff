"""Every view renders the one result: each caveat reaches the X-ray page, the patient's page, the
worklist, the report, the API (detail and list) and FHIR, and after a failed rescoring the earlier
run's scores reach none of them."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Prediction, XRay, XRayStatus
from diagnosis.records.results import result_of
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_counts")]

ERROR = "Cannot load the serving model from models/broken: it is not a valid ONNX file"


def full_size(xray):
    XRay.objects.filter(pk=xray.pk).update(width=1024, height=1024)
    return XRay.objects.get(pk=xray.pk)


def caveat_scenario(code, patient, tmp_path):
    """An X-ray whose result carries the caveat ``code`` (and, but for low_resolution, no other
    caveat of its image); the X-ray is flagged for Edema where it is scored."""
    if code in ("no_active_model",):
        return full_size(make_xray(patient))
    build_tiny_artefact(tmp_path / "model", name="clinic-model", unreliable=("Mass", "Hernia") if code == "unreliable_findings" else ())
    version = register_model_version(tmp_path / "model", activate=True)
    if code == "pending":
        return full_size(make_xray(patient))
    xray = make_xray(patient, version=version, flagged={"Edema"})
    if code != "low_resolution":
        xray = full_size(xray)
    if code == "guard_override":
        XRay.objects.filter(pk=xray.pk).update(guard_overridden=True)
    elif code == "scoring_failed":
        # What a failed rescoring leaves (diagnosis.intake.scoring): the status and reason, the earlier rows.
        XRay.objects.filter(pk=xray.pk).update(status=XRayStatus.FAILED, error=ERROR)
    elif code == "being_scored":
        XRay.objects.filter(pk=xray.pk).update(status=XRayStatus.SCORING)
    elif code == "incomplete":
        Prediction.objects.filter(xray=xray, finding="Hernia").delete()
    return XRay.objects.get(pk=xray.pk)


CODES = [
    "guard_override", "low_resolution", "scoring_failed", "unreliable_findings", "no_active_model", "pending",
    "being_scored", "incomplete",
]


def html_of(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def api_row(api, xray):
    response = api.get(reverse("api:xray-list"))
    assert response.status_code == 200
    (row,) = [row for row in response.json()["results"] if row["id"] == xray.pk]
    return row


VIEWS = {
    "xray page": lambda clients, xray: html_of(clients["staff"], xray.get_absolute_url()),
    "patient page": lambda clients, xray: html_of(clients["staff"], xray.patient.get_absolute_url()),
    "worklist": lambda clients, xray: html_of(clients["staff"], reverse("diagnosis:worklist")),
    "report": lambda clients, xray: html_of(clients["staff"], reverse("diagnosis:xray_report", args=[xray.pk])),
}


@pytest.fixture
def clients(staff_client, api):
    return {"staff": staff_client, "api": api}


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("code", CODES)
def test_each_caveat_reaches_each_page(clients, patient, tmp_path, code, view):
    xray = caveat_scenario(code, patient, tmp_path)
    caveat = result_of(xray).caveat(code)
    assert caveat is not None, code
    html = VIEWS[view](clients, xray)
    assert escape(caveat.message) in html
    if view in ("patient page", "worklist"):
        assert f'data-caveat="{code}" title="{escape(caveat.message)}">{escape(caveat.label)}<' in html


@pytest.mark.parametrize("code", CODES)
def test_each_caveat_reaches_the_api_detail_and_list(api, patient, tmp_path, code):
    xray = caveat_scenario(code, patient, tmp_path)
    caveat = result_of(xray).caveat(code)
    detail = api.get(reverse("api:xray-detail", args=[xray.pk]))
    assert detail.status_code == 200
    assert {"code": code, "message": caveat.message} in detail.json()["caveats"]
    assert {"code": code, "message": caveat.message} in api_row(api, xray)["caveats"]


@pytest.mark.parametrize("code", CODES)
def test_each_caveat_reaches_fhir_in_the_conclusion_or_the_refusal(api, patient, tmp_path, code):
    xray = caveat_scenario(code, patient, tmp_path)
    result = result_of(xray)
    response = api.get(reverse("api:xray-fhir", args=[xray.pk]))
    if result.scored:
        assert response.status_code == 200
        (report,) = [e["resource"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
        assert result.caveat(code).message in report["conclusion"]
    else:
        assert response.status_code == 409
        assert response.json() == {"detail": f"X-ray {xray.pk} has no FHIR report. {result.caveat(code).message}"}


def test_after_a_failed_rescoring_no_view_shows_the_earlier_scores(clients, api, patient, tmp_path):
    xray = caveat_scenario("scoring_failed", patient, tmp_path)
    assert Prediction.objects.filter(xray=xray, flagged=True).count() == 1  # the earlier rows, kept
    pages = {name: render(clients, xray) for name, render in VIEWS.items()}

    for name, html in pages.items():
        assert "90.0" not in html, name  # the earlier run's Edema score
        assert "clinic-model" not in html, name  # nor the version that scored it
    assert 'id="findings"' not in pages["xray page"] and '<dd id="model-version">—</dd>' in pages["xray page"]
    assert "Flagged" not in pages["report"] and 'id="ai-scores"' not in pages["report"]
    assert "None flagged" not in pages["worklist"] and "chip flagged" not in pages["worklist"]
    detail = api.get(reverse("api:xray-detail", args=[xray.pk])).json()
    assert (detail["findings"], detail["flagged"], detail["model_version"]) == ([], [], None)
    assert api_row(api, xray)["flagged"] == []
    assert api.get(reverse("api:xray-fhir", args=[xray.pk])).status_code == 409
    # Nor do the worklist's filter and triage order count the earlier flag.
    assert api.get(reverse("api:xray-list"), {"finding": "Edema"}).json()["results"] == []
    flagged = make_xray(patient, version=xray.predictions.first().model_version, flagged={"Edema"})
    unflagged = make_xray(patient, version=flagged.predictions.first().model_version)
    triage = [row["id"] for row in api.get(reverse("api:xray-list"), {"sort": "triage"}).json()["results"]]
    assert triage == [flagged.pk, unflagged.pk, xray.pk]


def test_a_guard_override_is_told_wherever_its_flag_is(clients, api, patient, tmp_path):
    xray = caveat_scenario("guard_override", patient, tmp_path)
    message = result_of(xray).caveat("guard_override").message
    report = VIEWS["report"](clients, xray)
    box = report[report.index('id="ai-box"'):]
    assert "<strong>Edema</strong>" in box and escape(message) in box
    worklist = VIEWS["worklist"](clients, xray)
    assert '<span class="chip flagged">Edema 90.0%</span>' in worklist and "Guard overridden" in worklist
    detail = api.get(reverse("api:xray-detail", args=[xray.pk])).json()
    assert detail["flagged"] == ["Edema"] and detail["caveats"] == [{"code": "guard_override", "message": message}]
    bundle = api.get(reverse("api:xray-fhir", args=[xray.pk])).json()
    conclusion = bundle["entry"][0]["resource"]["conclusion"]
    assert conclusion.startswith(f"Flagged by the model for a clinician to check: Edema. {message} ")
