"""Choosing a model version's operating point without retraining: command, admin, audit, flags."""

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from diagnosis.records.models import AuditEvent, Prediction
from dispredo_core.findings import FINDINGS
from dispredo_core.reliability import HOLDOUT_FILE, specificity_threshold
from dispredo_site.testing.helpers import upload_file


def holdout_thresholds(settings, specificity):
    with np.load(settings.DISPREDO_DEFAULT_MODEL_DIR / HOLDOUT_FILE) as stored:
        probabilities, labels = stored["probabilities"], stored["labels"].astype(bool)
    return {
        name: specificity_threshold(probabilities[~labels[:, i], i], specificity) for i, name in enumerate(FINDINGS)
    }


@pytest.mark.django_db
def test_the_shipped_model_flags_at_its_stored_operating_point(default_model, settings):
    assert default_model.operating_point["target_specificity"] == 0.95
    assert default_model.thresholds == pytest.approx(holdout_thresholds(settings, 0.95))
    assert 0 < len(default_model.reliable_findings()) < len(FINDINGS)


@pytest.mark.django_db
def test_the_command_sets_thresholds_reflags_stored_predictions_and_audits(default_model, staff_client, patient, sample_images, settings):
    upload_file(staff_client, sample_images["gray_1024"], patient)
    out = io.StringIO()
    call_command("operating_point", "--version", default_model.name, "--specificity", "0.6", stdout=out)

    default_model.refresh_from_db()
    assert default_model.operating_point["target_specificity"] == 0.6
    assert default_model.thresholds == pytest.approx(holdout_thresholds(settings, 0.6))
    for prediction in Prediction.objects.filter(model_version=default_model):
        expected = default_model.is_reliable(prediction.finding) and prediction.probability >= default_model.thresholds[prediction.finding]
        assert prediction.flagged == expected
    event = AuditEvent.objects.get(object_type="modelversion")
    assert event.object_id == default_model.pk and event.action == "change" and event.user is None
    assert event.username.startswith("manage.py (")
    assert event.detail.startswith("operating point: target specificity 0.95 -> 0.6; ")
    assert f"{default_model.name}: thresholds set for specificity 0.6;" in out.getvalue()
    assert "Effusion" in out.getvalue()


@pytest.mark.django_db
def test_the_command_refuses_what_it_cannot_do(default_model, tiny_model):
    with pytest.raises(CommandError, match=r"^No model version named 'nope'; list them in the admin\.$"):
        call_command("operating_point", "--version", "nope", "--specificity", "0.9")
    with pytest.raises(CommandError, match=r"^The target specificity must be at least 0.5 and below 1, not 1\.2\.$"):
        call_command("operating_point", "--version", default_model.name, "--specificity", "1.2")
    with pytest.raises(CommandError, match=r"^Model tiny-test-model carries no holdout scores, so its operating point cannot be chosen"):
        call_command("operating_point", "--version", tiny_model.name, "--specificity", "0.9")
    assert not AuditEvent.objects.filter(object_type="modelversion").exists()


@pytest.mark.django_db
def test_an_admin_sets_the_operating_point_in_the_admin(default_model, admin_client_, settings):
    url = reverse("admin:diagnosis_modelversion_operating_point", args=[default_model.pk])
    page = admin_client_.get(url)
    assert page.status_code == 200 and b'value="0.95"' in page.content
    change_page = admin_client_.get(reverse("admin:diagnosis_modelversion_change", args=[default_model.pk]))
    assert url.encode() in change_page.content and b"Target specificity: 0.95" in change_page.content

    refused = admin_client_.post(url, {"specificity": "0.2"})
    assert refused.status_code == 200
    assert refused.context["form"].errors == {"specificity": ["Ensure this value is greater than or equal to 0.5."]}

    response = admin_client_.post(url, {"specificity": "0.9"})
    assert response.status_code == 302 and response["Location"] == reverse("admin:diagnosis_modelversion_change", args=[default_model.pk])
    default_model.refresh_from_db()
    assert default_model.thresholds == pytest.approx(holdout_thresholds(settings, 0.9))
    event = AuditEvent.objects.get(object_type="modelversion")
    assert event.username == "boss" and "-> 0.9;" in event.detail


@pytest.mark.django_db
def test_staff_who_are_not_admins_cannot_change_the_operating_point(default_model, staff_client):
    url = reverse("admin:diagnosis_modelversion_operating_point", args=[default_model.pk])
    assert staff_client.post(url, {"specificity": "0.6"}).status_code in (302, 403)
    default_model.refresh_from_db()
    assert default_model.operating_point["target_specificity"] == 0.95


@pytest.mark.django_db
def test_re_registering_a_version_re_flags_what_it_scored(staff_client, patient, tmp_path, sample_images):
    from diagnosis.lifecycle.registry import register_model_version
    from dispredo_site.testing.tiny_model import build_tiny_artefact

    build_tiny_artefact(tmp_path / "m", name="upgraded", thresholds={f: 0.0 for f in FINDINGS})
    version = register_model_version(tmp_path / "m", activate=True)
    upload_file(staff_client, sample_images["gray_1024"], patient)
    assert Prediction.objects.filter(flagged=True).count() == 14

    # The same version comes back with reliability figures that clear only two findings.
    build_tiny_artefact(
        tmp_path / "m", name="upgraded", thresholds={f: 0.0 for f in FINDINGS},
        unreliable=[f for f in FINDINGS if f not in ("Edema", "Effusion")],
    )
    register_model_version(tmp_path / "m")
    assert sorted(Prediction.objects.filter(flagged=True).values_list("finding", flat=True)) == ["Edema", "Effusion"]
    assert Prediction.objects.filter(model_version=version).count() == 14
