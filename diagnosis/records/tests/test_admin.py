import re

import pytest
from django.urls import reverse

from diagnosis.lifecycle.models import ModelVersion
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray


@pytest.mark.django_db
def test_admin_pages_render_for_every_model(admin_client_, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model, flagged={"Edema"})
    prediction = xray.predictions.get(finding="Edema")
    for model, obj in [("patient", patient), ("xray", xray), ("prediction", prediction), ("modelversion", tiny_model)]:
        changelist = admin_client_.get(reverse(f"admin:diagnosis_{model}_changelist"))
        assert changelist.status_code == 200, model
        change = admin_client_.get(reverse(f"admin:diagnosis_{model}_change", args=[obj.pk]))
        assert change.status_code == 200, model
    searched = admin_client_.get(reverse("admin:diagnosis_patient_changelist"), {"q": "lovelace"})
    assert searched.context["cl"].result_count == 1
    filtered = admin_client_.get(reverse("admin:diagnosis_xray_changelist"), {"status__exact": "done"})
    assert filtered.context["cl"].result_count == 1


@pytest.mark.django_db
def test_predictions_are_read_only_in_the_admin(admin_client_, patient, tiny_model):
    prediction = make_xray(patient, version=tiny_model).predictions.first()
    response = admin_client_.post(
        reverse("admin:diagnosis_prediction_change", args=[prediction.pk]),
        {"finding": prediction.finding, "probability": "0.99", "flagged": "on", "model_version": tiny_model.pk},
    )
    assert response.status_code == 403
    prediction.refresh_from_db()
    assert prediction.probability == pytest.approx(0.1)
    assert admin_client_.get(reverse("admin:diagnosis_prediction_add")).status_code == 403


@pytest.mark.django_db
def test_the_admin_refuses_to_delete_a_patient_with_xrays(admin_client_, patient):
    make_xray(patient)
    response = admin_client_.post(reverse("admin:diagnosis_patient_delete", args=[patient.pk]), {"post": "yes"})
    assert response.status_code == 200
    assert "would require deleting the following protected related objects" in response.content.decode()
    assert patient.__class__.objects.filter(pk=patient.pk).exists()


@pytest.mark.django_db
def test_the_admin_action_activates_exactly_one_version(admin_client_, tiny_model):
    other = ModelVersion.objects.create(name="other", artefact_path="/nowhere", thresholds={})
    response = admin_client_.post(
        reverse("admin:diagnosis_modelversion_changelist"),
        {"action": "make_active", "index": "0", "_selected_action": [other.pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "other is now the active model, replacing tiny-test-model; the gate had nothing to compare on: "
        "no current signed-off reading of a patient neither version trained on."
    ]
    assert list(ModelVersion.objects.filter(is_active=True)) == [other]


@pytest.mark.django_db
def test_the_model_version_page_shows_its_evaluation(admin_client_, tiny_model):
    tiny_model.evaluation = {
        "test": {"mean_auroc": 0.6543, "findings": {"Edema": {"auroc": 0.7, "precision": 0.5, "recall": 0.25, "f1": 0.333}}}
    }
    tiny_model.save()
    html = admin_client_.get(reverse("admin:diagnosis_modelversion_change", args=[tiny_model.pk])).content.decode()
    assert "test split: mean AUROC 0.654" in html
    assert "<td>Edema</td><td>0.700</td><td>0.500</td><td>0.250</td><td>0.333</td>" in html
    assert "Flags per image" not in html  # a report saved before these figures existed
    tiny_model.evaluation["test"].update(
        flags_per_image=6.2, findings_per_image=0.97, mean_probability=0.062, prevalence=0.069, brier_score=0.061
    )
    tiny_model.save()
    html = admin_client_.get(reverse("admin:diagnosis_modelversion_change", args=[tiny_model.pk])).content.decode()
    assert (
        "<p>Flags per image 6.200 (findings present per image 0.970); mean probability 0.062 against a "
        "prevalence of 0.069; Brier score 0.061.</p>"
    ) in html
    changelist = admin_client_.get(reverse("admin:diagnosis_modelversion_changelist")).content.decode()
    assert "0.654" in changelist


@pytest.mark.django_db
def test_the_evaluation_lists_the_findings_in_their_order_whatever_the_database_keeps(admin_client_, tiny_model):
    # Written in reverse; PostgreSQL's jsonb would give them back sorted by length (Mass first).
    tiny_model.evaluation = {
        "test": {"mean_auroc": 0.5, "findings": {name: {"auroc": 0.5} for name in reversed(FINDINGS)}}
    }
    tiny_model.save()
    html = admin_client_.get(reverse("admin:diagnosis_modelversion_change", args=[tiny_model.pk])).content.decode()
    table = html[html.index("test split: mean AUROC") :]
    assert re.findall(r"<tr><td>([^<]+)</td><td>0.500</td>", table) == list(FINDINGS)


@pytest.mark.django_db
def test_the_model_version_page_lists_its_thresholds_and_reliability(admin_client_, tiny_model):
    html = admin_client_.get(reverse("admin:diagnosis_modelversion_change", args=[tiny_model.pk])).content.decode()
    assert "<tr><td>Pleural_Thickening</td><td>0.500</td><td>n/a</td><td>n/a</td><td>0.80 (0.70–\u20600.90)</td><td>yes</td></tr>" in html
    assert "Target specificity: not set." in html
