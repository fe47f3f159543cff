"""Training and serving see the same pixels: preprocess and the upload view share one image path."""

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.lifecycle import predictors as inference
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Patient, XRay
from dispredo_core.predictor import Predictor
from dispredo_site.testing.tiny_model import build_tiny_artefact
from mltrain.dataset import SPLITS, load_split


@pytest.mark.django_db
def test_an_uploaded_image_reaches_the_model_as_the_pixels_preprocess_stored(
    small_preprocessed, client, settings, tmp_path, monkeypatch
):
    data_dir, out = small_preprocessed
    settings.MEDIA_ROOT = tmp_path / "media"
    build_tiny_artefact(tmp_path / "model", size=16)  # the same size as small_preprocessed
    register_model_version(tmp_path / "model", activate=True)
    inference.clear_cache()
    client.force_login(get_user_model().objects.create_user("tech", is_staff=True))
    patient = Patient.objects.create(mrn="PX1", name="Pixel Test")

    seen = []
    original = Predictor.predict_pixels
    monkeypatch.setattr(Predictor, "predict_pixels", lambda self, batch: seen.append(batch[0].copy()) or original(self, batch))

    stored = {}
    for split in SPLITS:
        data = load_split(out, split)
        stored.update({str(name): data.pixels[i] for i, name in enumerate(data.names)})
    files = {path.name: path for path in data_dir.glob("images_*/images/*.png")}
    assert len(files) == len(stored) == 42
    for name, path in sorted(files.items()):
        seen.clear()
        response = client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(name, path.read_bytes())})
        assert response.status_code == 302, name
        assert len(seen) == 1 and np.array_equal(seen[0], stored[name]), name
    assert XRay.objects.count() == 42
    inference.clear_cache()
