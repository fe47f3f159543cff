"""Scoring an X-ray again replaces its predictions with the new run's, whole or not at all."""

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection

from diagnosis.intake.scoring import score_xray
from diagnosis.intake.storing import store_xray
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Prediction, XRay, XRayStatus
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import open_xray
from dispredo_core.predictor import Predictor
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = pytest.mark.django_db


@pytest.fixture
def chest(sample_images):
    return sample_images["px_256"].read_bytes()


@pytest.fixture
def scored(tiny_model, patient, staff, chest):
    """An X-ray scored by ``tiny_model``, and its predictions as stored."""
    image = open_xray(chest)
    xray = store_xray(patient=patient, data=chest, original_name="chest.png", image=image, uploaded_by=staff)
    assert score_xray(xray, image) == XRayStatus.DONE
    return xray, stored(xray)


@pytest.fixture
def second_model(tmp_path):
    """Another model (other weights, thresholds 0.2), not yet active, and its directory."""
    build_tiny_artefact(tmp_path / "second", name="second-model", seed=7, thresholds={f: 0.2 for f in FINDINGS})
    return register_model_version(tmp_path / "second"), tmp_path / "second"


def stored(xray):
    """{finding: (pk, model version pk, probability, flagged, heatmap bytes, heatmap shape)}."""
    return {
        p.finding: (p.pk, p.model_version_id, p.probability, p.flagged, bytes(p.heatmap), p.heatmap_shape)
        for p in Prediction.objects.filter(xray=xray)
    }


def assert_holds_only_the_run_of(xray, version, directory, data, earlier):
    rows = stored(xray)
    scores = Predictor(directory).predict(open_xray(data))
    assert sorted(rows) == sorted(FINDINGS)  # 14 rows, one a finding
    assert not {row[0] for row in rows.values()} & {row[0] for row in earlier.values()}
    for index, finding in enumerate(FINDINGS):
        _, version_pk, probability, flagged, heatmap, shape = rows[finding]
        cam = scores.cams[..., index].astype(np.float16)
        assert (version_pk, probability, flagged) == (version.pk, float(scores.probabilities[index]), probability >= 0.2)
        assert (heatmap, shape) == (cam.tobytes(), list(cam.shape))
    assert XRay.objects.get(pk=xray.pk).status == XRayStatus.DONE


def test_scoring_again_with_another_model_leaves_only_the_new_predictions(scored, second_model, chest):
    xray, earlier = scored
    version, directory = second_model
    version.activate()
    assert score_xray(XRay.objects.get(pk=xray.pk)) == XRayStatus.DONE
    assert_holds_only_the_run_of(xray, version, directory, chest, earlier)


def test_a_failed_run_keeps_the_earlier_predictions_and_rescore_replaces_them(scored, second_model, chest, tmp_path):
    xray, earlier = scored
    build_tiny_artefact(tmp_path / "broken", name="broken-model")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"garbage")
    register_model_version(tmp_path / "broken", activate=True)
    assert score_xray(XRay.objects.get(pk=xray.pk)) == XRayStatus.FAILED
    assert stored(xray) == earlier  # nothing removed, nothing added
    assert "Cannot load the serving model" in XRay.objects.get(pk=xray.pk).error

    version, directory = second_model
    version.activate()
    out = StringIO()
    call_command("rescore", failed=True, stdout=out)
    assert "Scored 1 of 1 X-ray(s) with second-model; 0 failed." in out.getvalue()
    assert_holds_only_the_run_of(xray, version, directory, chest, earlier)
    assert XRay.objects.get(pk=xray.pk).error == ""


REFUSE_ONE_ROW = {
    # The database refuses the new run's Pneumonia row, after the earlier rows are deleted and
    # with the other new rows in the same statement.
    "sqlite": [
        "CREATE TRIGGER refuse_one_row BEFORE INSERT ON diagnosis_prediction WHEN NEW.finding = 'Pneumonia' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_one_row() RETURNS trigger AS $$ BEGIN IF NEW.finding = 'Pneumonia' THEN "
        "RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_one_row BEFORE INSERT ON diagnosis_prediction FOR EACH ROW EXECUTE FUNCTION refuse_one_row()",
    ],
}


def test_a_database_failure_while_saving_leaves_the_earlier_predictions_whole(scored, second_model):
    xray, earlier = scored
    second_model[0].activate()
    with connection.cursor() as cursor:  # undone with the test's transaction
        for statement in REFUSE_ONE_ROW[connection.vendor]:
            cursor.execute(statement)
    with pytest.raises(DatabaseError, match="refused by the test trigger"):
        score_xray(XRay.objects.get(pk=xray.pk))
    assert stored(xray) == earlier
    assert XRay.objects.get(pk=xray.pk).status == XRayStatus.DONE


def test_after_a_failed_run_the_page_shows_the_failure_and_not_the_earlier_scores(scored, staff_client, tmp_path):
    xray, earlier = scored
    build_tiny_artefact(tmp_path / "broken", name="broken-model")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"garbage")
    register_model_version(tmp_path / "broken", activate=True)
    assert score_xray(XRay.objects.get(pk=xray.pk)) == XRayStatus.FAILED
    page = staff_client.get(f"/xrays/{xray.pk}/").content.decode()
    assert '<p class="message error" id="status">The model could not score this X-ray: Cannot load the serving model' in page
    assert '<dd id="model-version">—</dd>' in page
    assert "tiny-test-model" not in page
    assert stored(xray) == earlier  # still kept for the record
