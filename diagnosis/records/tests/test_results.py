"""``result_of`` and ``results_of``: what an X-ray shows, computed once (diagnosis.records.results)."""

import datetime

import pytest
from django.utils import timezone

from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Prediction, XRay, XRayStatus
from diagnosis.records.results import CAVEAT_CODES, result_of, results_of, scale_position
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = pytest.mark.django_db

EARLIER = "Its earlier scores are not shown: they are not the result of its last scoring."


def updated(xray, **fields):
    XRay.objects.filter(pk=xray.pk).update(**fields)
    return XRay.objects.get(pk=xray.pk)


def codes(result):
    return [caveat.code for caveat in result.caveats]


def with_scores(xray, scores):
    for finding, probability in scores.items():
        Prediction.objects.filter(xray=xray, finding=finding).update(probability=probability)
    return xray


@pytest.fixture
def scored(patient, tiny_model):
    """A full-size X-ray scored by ``tiny_model``, flagged for Edema (0.7) and Effusion (0.9)."""
    xray = updated(make_xray(patient, version=tiny_model, flagged={"Edema", "Effusion"}), width=1024, height=1024)
    return with_scores(xray, {"Edema": 0.7, "Mass": 0.3})


def test_a_scored_xray_holds_its_findings_in_order_its_flags_strongest_first_and_its_version(scored, tiny_model):
    result = result_of(scored)

    assert result.scored and result.status == XRayStatus.DONE and result.model_version == tiny_model
    assert [f.finding for f in result.findings] == list(FINDINGS)
    assert [f.finding for f in result.flagged] == ["Effusion", "Edema"]
    assert [f.finding for f in result.ranked][:3] == ["Effusion", "Edema", "Mass"]
    effusion = result.findings[FINDINGS.index("Effusion")]
    assert (effusion.probability, effusion.threshold, effusion.flagged, effusion.reliable) == (0.9, 0.5, True, True)
    assert (effusion.percent, effusion.threshold_percent, effusion.display_name, effusion.state) == (
        90.0, 50.0, "Effusion", "flagged"
    )
    assert (effusion.bar_position, effusion.marker_position) == (scale_position(0.9), scale_position(0.5))
    assert effusion.reliability == {"auroc": 0.8, "low": 0.7, "high": 0.9, "positives": 20, "reliable": True}
    assert result.caveats == () and result.status_caveat is None and result.model_caveat is None


def test_a_stored_flag_on_a_finding_that_is_not_reliable_is_no_flag(patient, tmp_path):
    build_tiny_artefact(tmp_path / "m", name="partly", unreliable=("Mass", "Hernia"))
    version = register_model_version(tmp_path / "m", activate=True)
    xray = updated(make_xray(patient, version=version, flagged={"Mass", "Edema"}), width=512, height=512)
    result = result_of(xray)

    assert [f.finding for f in result.flagged] == ["Edema"]
    mass = result.findings[FINDINGS.index("Mass")]
    assert (mass.flagged, mass.reliable, mass.state) == (False, False, "unreliable")
    (caveat,) = result.caveats
    assert (caveat.code, caveat.label) == ("unreliable_findings", "2 not reliable")
    assert caveat.message == "Not reliable with this model, so never flagged: Mass, Hernia."


def test_a_version_without_reliability_figures_or_without_a_reliable_finding_says_so(patient, tmp_path):
    build_tiny_artefact(tmp_path / "old", name="old", extra={"reliability": None})
    build_tiny_artefact(tmp_path / "none", name="none", unreliable=FINDINGS)
    old = register_model_version(tmp_path / "old")
    none = register_model_version(tmp_path / "none")
    assert result_of(make_xray(patient, version=old)).model_caveat.message == (
        "This model version carries no reliability figures, so none of its findings can be trusted to flag."
    )
    assert result_of(make_xray(patient, version=none)).model_caveat.message == (
        "None of the 14 findings is reliable with this model, so none is ever flagged."
    )


def test_after_a_failed_rescoring_there_are_no_scores_and_the_failure_says_the_earlier_ones_are_hidden(scored):
    failed = updated(scored, status=XRayStatus.FAILED, error="Cannot load the serving model: bad file.")
    result = result_of(failed)

    assert (result.findings, result.flagged, result.model_version) == ((), [], None)
    assert Prediction.objects.filter(xray=failed).count() == 14  # kept for the record
    assert codes(result) == ["scoring_failed"] and result.status_caveat.severity == "error"
    assert result.status_caveat.message == (
        f"The model could not score this X-ray: Cannot load the serving model: bad file. {EARLIER} "
        "Score it again with manage.py rescore --failed."
    )
    first_run = result_of(make_xray(scored.patient, status=XRayStatus.FAILED))
    assert first_run.status_caveat.message == "The model could not score this X-ray. Score it again with manage.py rescore --failed."


def test_an_xray_being_scored_shows_no_scores_yet(scored):
    result = result_of(updated(scored, status=XRayStatus.SCORING))
    assert not result.scored and result.model_version is None
    assert (result.status_caveat.code, result.status_caveat.label) == ("being_scored", "Being scored")
    assert result.status_caveat.message == f"Being scored: the model is scoring this X-ray now. {EARLIER}"


def test_a_pending_xray_says_whether_a_model_is_active(patient, tmp_path):
    xray = updated(make_xray(patient), width=512, height=512)
    assert codes(result_of(xray)) == ["no_active_model"]
    build_tiny_artefact(tmp_path / "m", name="clinic-model")
    register_model_version(tmp_path / "m", activate=True)
    caveat = result_of(xray).status_caveat
    assert (caveat.code, caveat.label) == ("pending", "Pending")
    assert caveat.message == (
        "Pending: no model was installed when this X-ray was uploaded. Model version clinic-model is active now: "
        "manage.py rescore scores it."
    )


@pytest.mark.parametrize("damage", ["a missing finding", "two versions"])
def test_done_without_one_prediction_per_finding_from_one_version_is_incomplete(scored, tmp_path, damage):
    if damage == "a missing finding":
        Prediction.objects.filter(xray=scored, finding="Hernia").delete()
    else:
        build_tiny_artefact(tmp_path / "other", name="other")
        Prediction.objects.filter(xray=scored, finding="Hernia").update(model_version=register_model_version(tmp_path / "other"))
    result = result_of(scored)
    assert not result.scored and result.model_version is None and codes(result) == ["incomplete"]


def test_the_image_caveats_come_with_the_scores_in_one_order(scored):
    result = result_of(updated(scored, guard_overridden=True, width=300, height=255))
    assert codes(result) == ["guard_override", "low_resolution"]
    assert [c.code for c in result.image_caveats] == codes(result)
    assert result.caveat("low_resolution").message.startswith(
        "Low resolution: this image is 300×255 pixels, under 256 on its short side."
    )
    assert result.caveat("guard_override").label == "Guard overridden"
    assert result.scored and [f.finding for f in result.flagged] == ["Effusion", "Edema"]
    assert codes(result_of(updated(scored, height=256))) == ["guard_override"]
    assert set(CAVEAT_CODES) >= {"guard_override", "low_resolution", "scoring_failed", "unreliable_findings", "no_active_model"}


def test_the_study_date_is_the_dicom_one_else_the_upload_date(patient, settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    uploaded = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.timezone.utc)  # 2 March in Auckland
    xray = make_xray(patient, uploaded_at=uploaded)
    result = result_of(xray)
    assert (result.study_date, result.study_date_is_upload) == (datetime.date(2026, 3, 2), True)
    from_dicom = result_of(updated(xray, study_date=datetime.date(2026, 2, 27)))
    assert (from_dicom.study_date, from_dicom.study_date_is_upload) == (datetime.date(2026, 2, 27), False)


@pytest.mark.parametrize(
    ("source", "ae_title", "label"),
    [
        ("page", "", "Upload page"),
        ("api", "", "REST API"),
        ("dicom", "MODALITY1", "DICOM listener (AE MODALITY1)"),
        ("", "", "not recorded"),
    ],
)
def test_the_source_door_is_named(patient, source, ae_title, label):
    door = result_of(updated(make_xray(patient), source=source, calling_ae_title=ae_title)).source
    assert (door.code, door.calling_ae_title, door.label) == (source, ae_title, label)


def test_a_page_of_results_takes_two_queries_in_the_xrays_order(patient, tiny_model, tmp_path, django_assert_num_queries):
    build_tiny_artefact(tmp_path / "older", name="older")
    older = register_model_version(tmp_path / "older")
    now = timezone.now()
    xrays = [
        make_xray(patient, version=tiny_model if n % 2 else older, flagged={"Edema"}, uploaded_at=now - datetime.timedelta(minutes=n))
        for n in range(6)
    ] + [make_xray(patient)]
    listed = list(XRay.objects.filter(pk__in=[x.pk for x in xrays]))
    with django_assert_num_queries(2):  # the predictions; the versions they name and the active one
        results = results_of(listed)
    assert [r.xray_id for r in results] == [x.pk for x in listed]
    assert {r.model_version.name for r in results if r.scored} == {"older", tiny_model.name}
    assert [r.status_caveat.code for r in results if not r.scored] == ["pending"]
    # A page needs no class activation maps: they are left in the database unless asked for.
    scored_one = next(x for x, r in zip(listed, results) if r.scored)
    assert "heatmap" in results_of([scored_one])[0].findings[0].prediction.get_deferred_fields()
    assert "heatmap" not in result_of(scored_one, heatmaps=True).findings[0].prediction.get_deferred_fields()


def test_results_are_frozen(scored):
    result = result_of(scored)
    with pytest.raises(AttributeError):
        result.status = XRayStatus.FAILED
    with pytest.raises(AttributeError):
        result.findings[0].flagged = True


def test_the_flag_filter_and_the_triage_order_ignore_the_flags_of_a_failed_rescoring(scored, patient, tiny_model):
    failed = make_xray(patient, version=tiny_model, flagged={"Effusion"})
    with_scores(failed, {"Effusion": 0.99})
    updated(failed, status=XRayStatus.FAILED, error="Scoring failed.")
    plain = make_xray(patient, version=tiny_model)
    assert list(XRay.objects.with_flagged_finding("Effusion")) == [scored]
    assert [x.pk for x in XRay.objects.triage_order()] == [scored.pk, plain.pk, failed.pk]
