"""The activation gate: a version is compared with the active one on the held-out clinic readings
before it becomes active, and refused when it is worse beyond the margin unless forced.

Two tiny real ONNX models of known quality: "bright" scores every finding by the image's mean
brightness, "dark" by its opposite. Readings mark every finding present on bright X-rays and
absent on dark ones, so "bright" ranks them perfectly (AUROC 1) and "dark" inverts them (AUROC 0).
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from diagnosis.gate.activation import ALREADY, FIRST, NOTHING, OVERRIDDEN, PASSED, ActivationRefused, activate
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.models import Mark, Reading, ReadingStatus
from diagnosis.records.models import AuditEvent
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.gate_clinic import BRIGHT_IMAGES, DARK_IMAGES, clinic, model, reading
from dispredo_site.testing.tiny_model import build_tiny_artefact

REFUSAL = (
    "dark is worse than bright on 8 held-out clinic readings: mean AUROC 0.000 against 1.000 "
    "(difference -1.000, 95 % interval -1.000 to -1.000; the margin is 0.02)."
)
OVERRIDE_DETAIL = (
    "activated; gate overridden: mean AUROC 0.000 vs 1.000, difference -1.000 (95 % -1.000 to -1.000), "
    "margin 0.02, 8 held-out readings; previously active: bright"
)



@pytest.fixture
def bright_active(db, tmp_path):
    return model(tmp_path, "bright", "bright", active=True)


@pytest.mark.django_db
def test_it_refuses_a_worse_candidate_and_names_the_figures(tmp_path, bright_active, staff):
    dark = model(tmp_path, "dark", "dark")
    clinic()

    with pytest.raises(ActivationRefused) as refused:
        activate(dark, user=staff)

    assert str(refused.value) == f"{REFUSAL} Use --force to activate it anyway."
    comparison = refused.value.result.comparison
    assert comparison["findings"]["Edema"] == {
        "positives": 4, "negatives": 4, "candidate": 0.0, "against": 1.0, "difference": -1.0, "low": -1.0, "high": -1.0,
    }
    assert comparison["mean"]["findings"] == 14
    assert ModelVersion.active() == bright_active
    event = AuditEvent.objects.get(object_type="modelversion", object_id=dark.pk)
    assert event.username == "nurse"
    assert event.detail.startswith("activation refused by the gate: mean AUROC 0.000 vs 1.000, difference -1.000")


@pytest.mark.django_db
def test_it_allows_an_equal_or_better_candidate(tmp_path, bright_active):
    clinic()
    twin = model(tmp_path, "bright-twin", "bright")

    result = activate(twin)

    assert result.outcome == PASSED
    assert result.message == (
        "bright-twin is now the active model, replacing bright: the gate passed on 8 held-out clinic readings: "
        "mean AUROC 1.000 against 1.000 (difference +0.000, 95 % interval +0.000 to +0.000; the margin is 0.02)."
    )
    assert ModelVersion.active() == twin

    dark = model(tmp_path, "dark", "dark")
    with pytest.raises(ActivationRefused):
        activate(dark)
    dark.activate()  # as if it had been forced; now the better one comes back through the gate
    result = activate(twin)
    assert result.outcome == PASSED and result.comparison["mean"]["difference"] == 1.0
    detail = AuditEvent.objects.filter(object_id=twin.pk).first().detail
    assert detail == (
        "activated; gate passed: mean AUROC 1.000 vs 0.000, difference +1.000 (95 % +1.000 to +1.000), "
        "margin 0.02, 8 held-out readings; previously active: dark"
    )


@pytest.mark.django_db
def test_the_margin_comes_from_the_setting(tmp_path, bright_active, settings):
    flat = model(tmp_path, "flat", "constant")  # every score 0.5: AUROC 0.5 everywhere
    clinic()

    with pytest.raises(ActivationRefused, match=r"mean AUROC 0\.500 against 1\.000 \(difference -0\.500"):
        activate(flat)

    settings.DISPREDO_GATE_MARGIN = 0.6
    result = activate(flat)
    assert result.outcome == PASSED
    assert result.message.endswith("(difference -0.500, 95 % interval -0.500 to -0.500; the margin is 0.6).")


@pytest.mark.django_db
def test_with_no_held_out_reading_it_activates_and_says_there_was_nothing_to_compare_on(tmp_path, bright_active):
    dark = model(tmp_path, "dark", "dark")
    reading(200, present=True, status=ReadingStatus.DRAFT)  # drafts are not the record

    result = activate(dark)

    assert result.outcome == NOTHING
    assert result.message == (
        "dark is now the active model, replacing bright; the gate had nothing to compare on: no current "
        "signed-off reading of a patient neither version trained on."
    )
    assert ModelVersion.active() == dark
    assert AuditEvent.objects.get(object_id=dark.pk).detail.startswith("activated; gate had nothing to compare on")

    for value in BRIGHT_IMAGES:  # signed, but every finding present: no finding has both classes
        reading(value, present=True)
    result = activate(bright_active)
    assert result.outcome == NOTHING
    assert result.reason == "no finding is marked both present and absent among the 4 held-out clinic readings"


@pytest.mark.django_db
def test_it_leaves_out_readings_of_patients_either_version_trained_on(tmp_path, db):
    bright = model(tmp_path, "bright", "bright", active=True, patients={"train": [1001, 1002, 1003]})
    dark = model(tmp_path, "dark", "dark", patients={"train": [7], "val": [1004, 1005]})
    # Held out, and on them "dark" is perfect: present on dark images. One patient was exported
    # (pseudonym 2000) but neither version trained on it.
    for index, value in enumerate(DARK_IMAGES):
        reading(value, present=True, pseudonym=2000 if index == 0 else None)
    for value in BRIGHT_IMAGES:
        reading(value, present=False)
    # Trained on by one version or the other, and they favour "bright": left out.
    for number, value in zip(range(1001, 1006), (30, 60, 200, 230, 250)):
        reading(value, present=value > 128, pseudonym=number)

    result = activate(dark)

    assert result.outcome == PASSED
    assert (result.readings, result.trained) == (8, 5)
    assert result.comparison["mean"]["candidate"] == 1.0 and result.comparison["mean"]["against"] == 0.0
    assert result.lines()[-1] == (
        "Left out: 5 reading(s) of patients a version trained on, 0 X-ray(s) whose file is missing or does not decode."
    )


@pytest.mark.django_db
def test_marks_not_assessable_are_left_out_per_finding_and_amendments_supersede(tmp_path, bright_active):
    dark = model(tmp_path, "dark", "dark")
    clinic()
    first = Reading.objects.filter(status=ReadingStatus.SIGNED).order_by("pk").first()  # value 20, absent
    # Amended: now Edema is not assessable and Effusion present (against "bright"'s ranking).
    amended = {name: Mark.ABSENT for name in FINDINGS} | {"Edema": Mark.NOT_ASSESSABLE, "Effusion": Mark.PRESENT}
    reading(0, present=False, xray=first.xray, version=2, marks=amended)
    reading(0, present=False, content=b"not an image")  # its file does not decode: counted, left out

    with pytest.raises(ActivationRefused) as refused:
        activate(dark)

    result = refused.value.result
    assert (result.readings, result.unreadable) == (8, 1)
    findings = result.comparison["findings"]
    assert (findings["Edema"]["positives"], findings["Edema"]["negatives"]) == (4, 3)
    assert (findings["Effusion"]["positives"], findings["Effusion"]["negatives"]) == (5, 3)
    # "bright" ranks the 4 bright positives above the 3 negatives, the darkest X-ray (now present) below them.
    assert findings["Effusion"]["against"] == pytest.approx((4 * 3 + 0) / (5 * 3))


@pytest.mark.django_db
def test_force_activates_a_refused_candidate_and_audits_the_override(tmp_path, bright_active, staff):
    dark = model(tmp_path, "dark", "dark")
    clinic()

    result = activate(dark, user=staff, force=True)

    assert result.outcome == OVERRIDDEN
    assert result.message == (
        "dark is now the active model, replacing bright, although it is worse on 8 held-out clinic readings: "
        "mean AUROC 0.000 against 1.000 (difference -1.000, 95 % interval -1.000 to -1.000; the margin is 0.02). "
        "The gate was overridden."
    )
    assert ModelVersion.active() == dark
    event = AuditEvent.objects.get(object_type="modelversion", object_id=dark.pk)
    assert (event.username, event.action, event.detail) == ("nurse", "change", OVERRIDE_DETAIL)


@pytest.mark.django_db
def test_the_first_activation_needs_no_gate_and_an_active_version_stays(tmp_path):
    bright = model(tmp_path, "bright", "bright")
    clinic()

    assert activate(bright).outcome == FIRST
    assert activate(bright).outcome == ALREADY
    assert [event.detail for event in AuditEvent.objects.filter(object_id=bright.pk)] == [
        "activated; no version was active (no gate)"
    ]


@pytest.mark.django_db
def test_the_activate_command_refuses_then_forces(tmp_path, bright_active):
    model(tmp_path, "dark", "dark")
    clinic()

    with pytest.raises(CommandError) as refused:
        call_command("activate", "--version", "dark", stdout=StringIO())
    assert str(refused.value) == f"{REFUSAL} Use --force to activate it anyway."
    assert ModelVersion.active() == bright_active

    out = StringIO()
    call_command("activate", "--version", "dark", "--force", stdout=out)
    text = out.getvalue()
    assert "Edema                    0.000     1.000  -1.000 (-1.000 to -1.000)" in text.splitlines()
    assert "The gate was overridden." in text
    assert ModelVersion.active().name == "dark"
    assert AuditEvent.objects.filter(detail=OVERRIDE_DETAIL, username__startswith="manage.py").exists()

    with pytest.raises(CommandError, match="No model version named 'nope'"):
        call_command("activate", "--version", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_the_admin_action_shows_the_refusal_then_activates_when_confirmed(tmp_path, bright_active, admin_client_):
    dark = model(tmp_path, "dark", "dark")
    clinic()
    changelist = reverse("admin:diagnosis_modelversion_changelist")

    page = admin_client_.post(changelist, {"action": "make_active", "index": "0", "_selected_action": [dark.pk]})

    assert page.status_code == 200
    assert page.templates[0].name == "admin/diagnosis/modelversion/activate_anyway.html"
    html = page.content.decode()
    assert f"The activation gate refused it: {REFUSAL}" in html
    assert 'value="Activate anyway"' in html
    assert ModelVersion.active() == bright_active

    confirm = reverse("admin:diagnosis_modelversion_activate_anyway", args=[dark.pk])
    assert admin_client_.get(confirm).status_code == 405
    response = admin_client_.post(confirm, follow=True)
    assert response.redirect_chain[-1][0] == changelist
    assert [str(m) for m in response.context["messages"]][-1].endswith("The gate was overridden.")
    assert ModelVersion.active() == dark
    event = AuditEvent.objects.get(object_type="modelversion", object_id=dark.pk, detail=OVERRIDE_DETAIL)
    assert event.username == "boss"


@pytest.mark.django_db
def test_the_admin_checkbox_goes_through_the_gate(tmp_path, bright_active, admin_client_):
    dark = model(tmp_path, "dark", "dark")
    clinic()
    change = reverse("admin:diagnosis_modelversion_change", args=[dark.pk])

    page = admin_client_.post(change, {"name": "dark", "artefact_path": dark.artefact_path, "is_active": "on"})

    assert page.status_code == 200
    assert f"The activation gate refused it: {REFUSAL}" in page.content.decode()
    assert ModelVersion.active() == bright_active

    twin = model(tmp_path, "bright-twin", "bright")
    response = admin_client_.post(
        reverse("admin:diagnosis_modelversion_change", args=[twin.pk]),
        {"name": "bright-twin", "artefact_path": twin.artefact_path, "is_active": "on"},
        follow=True,
    )
    assert any("the gate passed on 8 held-out clinic readings" in str(m) for m in response.context["messages"])
    assert ModelVersion.active() == twin


@pytest.mark.django_db
def test_training_with_activate_goes_through_the_gate(tmp_path, bright_active):
    """``manage.py train --activate`` registers through ``mltrain.registry.register``: refused, the new
    version stays registered and inactive; with ``--force`` it is active."""
    from mltrain import registry

    clinic()
    build_tiny_artefact(tmp_path / "dark", name="dark", response="dark")
    with pytest.raises(ActivationRefused) as refused:
        registry.register(tmp_path / "dark", activate=True)
    assert str(refused.value) == (
        f"{REFUSAL} dark is registered but not active; manage.py activate --version dark --force activates it anyway."
    )
    assert not ModelVersion.objects.get(name="dark").is_active

    build_tiny_artefact(tmp_path / "dark-2", name="dark-2", response="dark")
    version = registry.register(tmp_path / "dark-2", activate=True, force=True)
    assert version.is_active and version.activation.outcome == OVERRIDDEN

    with pytest.raises(CommandError, match="--force overrides the activation gate, so it needs --activate."):
        call_command("train", "--force", stdout=StringIO())


def test_the_margin_setting_must_be_a_number_from_0_to_1(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from dispredo_site.env import env_float

    monkeypatch.setenv("DISPREDO_GATE_MARGIN", "0.05")
    assert env_float("DISPREDO_GATE_MARGIN", 0.02, 0.0, 1.0) == 0.05
    monkeypatch.setenv("DISPREDO_GATE_MARGIN", "2%")
    with pytest.raises(ImproperlyConfigured, match="DISPREDO_GATE_MARGIN must be a number, not '2%'."):
        env_float("DISPREDO_GATE_MARGIN", 0.02, 0.0, 1.0)
    monkeypatch.setenv("DISPREDO_GATE_MARGIN", "-0.1")
    with pytest.raises(ImproperlyConfigured, match="must be a number from 0 to 1, not '-0.1'."):
        env_float("DISPREDO_GATE_MARGIN", 0.02, 0.0, 1.0)
