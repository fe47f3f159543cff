"""The result page explains itself: scores, thresholds, flags, reliability, heatmaps, model card."""

import pytest
from django.test import Client
from django.urls import reverse

from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.results import scale_position
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.helpers import upload_file
from dispredo_site.testing.tiny_model import build_tiny_artefact

UNRELIABLE = ("Mass", "Nodule", "Hernia")


@pytest.fixture
def partly_reliable_model(db, tmp_path):
    """A tiny model on which every finding scores above a threshold of 0.01, three of them not reliable."""
    build_tiny_artefact(tmp_path / "m", name="partly-reliable", thresholds={f: 0.01 for f in FINDINGS}, unreliable=UNRELIABLE)
    (tmp_path / "m" / "MODEL_CARD.md").write_text("# Model card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    return register_model_version(tmp_path / "m", activate=True)


@pytest.mark.django_db
def test_findings_that_are_not_reliable_are_greyed_never_flagged_and_explained(staff_client, patient, partly_reliable_model, sample_images):
    response = upload_file(staff_client, sample_images["gray_1024"], patient)
    html = response.content.decode()
    predictions = response.context["result"].ranked
    flagged = {p.finding for p in predictions if p.flagged}
    assert flagged == set(FINDINGS) - set(UNRELIABLE)
    # Reliable first, then the greyed ones.
    assert [p.reliable for p in predictions] == [True] * 11 + [False] * 3
    assert {p.finding for p in predictions[-3:]} == set(UNRELIABLE)
    assert html.count('class="unreliable"') == 3
    assert html.count('<span class="chip unreliable">not reliable</span>') == 3
    assert "Not reliable with this model, so never flagged: Nodule, Mass, Hernia." in html
    assert "Findings that are not reliable are shown greyed." in html
    assert "the lower end of its 95 % interval is at least 0.6" in html
    assert 'id="explanation"' in html and "It is a model score, not a diagnosis" in html


@pytest.mark.django_db
def test_each_bar_carries_its_threshold_marker_on_a_log_scale(staff_client, patient, partly_reliable_model, sample_images):
    html = upload_file(staff_client, sample_images["gray_1024"], patient).content.decode()
    assert html.count('<i class="marker" style="left: 33.3%"') == 14  # 1 % sits a third of the way along
    assert scale_position(0.001) == 0.0 and scale_position(0.0) == 0.0
    assert scale_position(0.01) == pytest.approx(33.3) and scale_position(0.1) == pytest.approx(66.7)
    assert scale_position(1.0) == 100.0


@pytest.mark.django_db
def test_the_model_card_is_rendered_for_signed_in_staff_only(staff_client, patient, partly_reliable_model, sample_images):
    html = upload_file(staff_client, sample_images["gray_1024"], patient).content.decode()
    url = reverse("diagnosis:model_card", args=[partly_reliable_model.pk])
    assert f'href="{url}"' in html
    card = staff_client.get(url)
    assert card.status_code == 200
    assert "<h1>Model card</h1>" in card.content.decode() and "<td>1</td>" in card.content.decode()
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_version_without_a_card_has_no_link_and_its_card_is_404(staff_client, patient, tiny_model, sample_images):
    html = upload_file(staff_client, sample_images["gray_1024"], patient).content.decode()
    assert 'id="model-card-link"' not in html
    assert staff_client.get(reverse("diagnosis:model_card", args=[tiny_model.pk])).status_code == 404


@pytest.mark.django_db
def test_a_version_without_reliability_figures_flags_nothing(staff_client, patient, tmp_path, sample_images):
    build_tiny_artefact(tmp_path / "old", name="old-format", thresholds={f: 0.0 for f in FINDINGS}, extra={"reliability": None})
    register_model_version(tmp_path / "old", activate=True)
    response = upload_file(staff_client, sample_images["gray_1024"], patient)
    assert response.context["result"].flagged == []
    assert "This model version carries no reliability figures" in response.content.decode()


@pytest.mark.django_db
def test_a_coarse_heatmap_is_hidden_with_the_reason(staff_client, patient, default_model, sample_images):
    response = upload_file(staff_client, sample_images["gray_1024"], patient)
    html = response.content.decode()
    assert response.context["heatmaps"] == {}
    assert 'id="heatmap-toggle"' not in html and "js/heatmap.js" not in html
    assert "this model's activation maps have only 2 × 2 cells over the whole image" in html


@pytest.mark.django_db
def test_a_fine_heatmap_is_offered_but_off_by_default(staff_client, patient, tiny_model, sample_images):
    html = upload_file(staff_client, sample_images["gray_1024"], patient).content.decode()
    assert '<input type="checkbox" id="heatmap-toggle">' in html  # not checked
    assert '<canvas id="heatmap" aria-hidden="true" hidden>' in html
