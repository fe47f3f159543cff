import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.urls import reverse

from diagnosis.lifecycle import predictors as inference
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Prediction, XRay, XRayStatus
from dispredo_core.artefact import ArtefactError
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.helpers import REPO
from dispredo_site.testing.tiny_model import build_tiny_artefact


def upload(client, patient, path):
    client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())})
    return XRay.objects.latest("pk")


@pytest.mark.django_db
def test_activating_another_version_changes_the_model_of_later_uploads(staff_client, patient, tiny_model, tmp_path, sample_images):
    first = upload(staff_client, patient, sample_images["px_64"])
    build_tiny_artefact(tmp_path / "second", name="second-model", seed=7, thresholds={f: 0.2 for f in FINDINGS})
    second = register_model_version(tmp_path / "second", activate=True)
    later = upload(staff_client, patient, sample_images["px_64"])

    assert {p.model_version for p in first.predictions.all()} == {tiny_model}
    assert {p.model_version for p in later.predictions.all()} == {second}
    assert [p.probability for p in first.predictions.order_by("finding")] != [p.probability for p in later.predictions.order_by("finding")]
    assert all(p.flagged == (p.probability >= 0.2) for p in later.predictions.all())
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]


@pytest.mark.django_db
def test_at_most_one_version_is_active(tiny_model):
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(name="another", artefact_path="x", thresholds={}, is_active=True)


@pytest.mark.django_db
def test_a_half_written_artefact_is_not_registered(tmp_path):
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "model.onnx").write_bytes(b"")
    with pytest.raises(ArtefactError, match="missing metadata.json"):
        register_model_version(tmp_path / "partial")
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_the_model_is_loaded_once_per_process(staff_client, patient, tiny_model, sample_images):
    assert inference._loaded == {}
    upload(staff_client, patient, sample_images["px_64"])
    key = (tiny_model.pk, tiny_model.artefact_path)
    loaded = inference._loaded[key]
    upload(staff_client, patient, sample_images["px_64"])
    assert inference._loaded == {key: loaded}


@pytest.mark.django_db
def test_a_broken_model_marks_the_xray_failed(staff_client, patient, tmp_path, sample_images):
    build_tiny_artefact(tmp_path / "broken")
    version = register_model_version(tmp_path / "broken", activate=True)
    (tmp_path / "broken" / "model.onnx").write_bytes(b"garbage")
    xray = upload(staff_client, patient, sample_images["px_64"])
    assert xray.status == XRayStatus.FAILED and xray.error
    assert version.predictions.count() == 0
    page = staff_client.get(xray.get_absolute_url()).content.decode()
    assert "The model could not score this X-ray" in page


@pytest.mark.django_db
def test_rescore_scores_pending_xrays_once_a_model_exists(staff_client, patient, tmp_path, sample_images):
    from io import StringIO

    pending = upload(staff_client, patient, sample_images["px_256"])
    assert pending.status == XRayStatus.PENDING
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("rescore", verbosity=0, stdout=StringIO())

    build_tiny_artefact(tmp_path / "m")
    register_model_version(tmp_path / "m", activate=True)
    out = StringIO()
    call_command("rescore", stdout=out)
    pending.refresh_from_db()
    assert pending.status == XRayStatus.DONE
    assert Prediction.objects.filter(xray=pending).count() == 14
    assert "Scored 1 of 1 X-ray(s) with tiny-test-model; 0 failed." in out.getvalue()


def test_the_web_process_never_imports_tensorflow(tmp_path, sample_images):
    """Serving uses ONNX Runtime: importing the app and scoring an X-ray must not pull in TensorFlow."""
    script = f"""
import os, sys, pathlib
os.environ["DJANGO_SETTINGS_MODULE"] = "dispredo_site.settings"
os.environ["DISPREDO_DATA_DIR"] = {str(tmp_path)!r}
import django; django.setup()
import dispredo_site.urls, diagnosis.pages.views, diagnosis.admin
from dispredo_site.testing.tiny_model import build_tiny_artefact
from dispredo_core.predictor import Predictor
from dispredo_core.imaging import open_xray
build_tiny_artefact(pathlib.Path({str(tmp_path / 'm')!r}))
scores = Predictor({str(tmp_path / 'm')!r}).predict(open_xray(open({str(sample_images['px_64'])!r}, 'rb').read()))
assert scores.probabilities.shape == (14,)
print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
