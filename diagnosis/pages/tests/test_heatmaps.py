import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.intake.scoring import heatmap_of
from diagnosis.lifecycle.predictors import predictor_for
from diagnosis.records.models import XRay
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import open_xray


@pytest.mark.django_db
def test_each_prediction_stores_its_own_class_activation_map(staff_client, patient, tiny_model, sample_images):
    path = sample_images["rgba_1024"]
    staff_client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())})
    xray = XRay.objects.get()
    maps = {p.finding: heatmap_of(p) for p in xray.predictions.all()}

    # The tiny model takes 32x32 pixels and pools 4x4 blocks: an 8x8 map per finding.
    assert {m.shape for m in maps.values()} == {(8, 8)}
    assert not np.allclose(maps["Mass"], maps["Edema"])
    # Stored from the same forward pass as the probabilities (float16 on disk).
    scores = predictor_for(tiny_model).predict(open_xray(path.read_bytes()))
    assert np.allclose(maps["Mass"], scores.cams[..., FINDINGS.index("Mass")], atol=1e-2)


@pytest.mark.django_db
def test_the_result_page_embeds_the_maps_for_the_overlay(staff_client, patient, tiny_model, sample_images):
    path = sample_images["px_64"]
    response = staff_client.post(
        reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())}, follow=True
    )
    html = response.content.decode()
    assert '<script id="heatmap-data" type="application/json">' in html
    assert 'id="heatmap-toggle"' in html and "js/heatmap.js" in html
    assert len(response.context["heatmaps"]["Mass"]) == 8
