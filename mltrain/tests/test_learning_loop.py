"""The clinic's learning loop end to end: readings signed off through the pages, exported, preprocessed
with NIH data, a short retrain, compare, and the gate refusing and then allowing an activation."""

import csv
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from diagnosis.lifecycle import predictors as inference
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.readings.models import Reading
from diagnosis.records.models import AuditEvent, XRay
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.helpers import reading_data, upload_file

# The sample's later release: images of patients the shipped model never trained on.
CLINIC_FOLDER = "images_003/images"
EXPORTED, HELD_OUT = 24, 16


@pytest.fixture
def clinic(db, settings, tmp_path):
    """The shipped model active, and a reader's browser session."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "mltrain"
    inference.clear_cache()
    default = register_model_version(settings.DISPREDO_DEFAULT_MODEL_DIR, activate=True)
    reader = get_user_model().objects.create_user("reader", password="correct horse battery", is_staff=True)
    reader.groups.add(Group.objects.get(name="Readers"))
    client = Client()
    client.force_login(reader)
    yield default, client
    inference.clear_cache()


def upload_all(client, paths):
    """Each file uploaded through the page for a new patient; returns the stored X-rays in order."""
    xrays = []
    for number, path in enumerate(paths):
        response = upload_file(
            client, path, new_mrn=f"CL{number:04d}", new_name=f"Clinic Patient {number}", new_sex="F", score_anyway="on"
        )
        assert response.status_code == 200
        xrays.append(XRay.objects.get(patient__mrn=f"CL{number:04d}"))
    return xrays


def marks_that_agree_with(xrays):
    """Per X-ray, the reader's marks: present where the shipped model's score is above its median over
    these X-rays. The shipped model then ranks the readings perfectly, and any other model worse."""
    scores = np.array([[x.predictions.get(finding=name).probability for name in FINDINGS] for x in xrays])
    present = scores > np.median(scores, axis=0)
    return [{name: "present" if row[i] else "absent" for i, name in enumerate(FINDINGS)} for row in present]


def sign_off(client, xray, marks):
    response = client.post(
        reverse("diagnosis:reading_save", args=[xray.pk]),
        reading_data("sign", marks=marks, impression="Read for the learning loop."),
    )
    assert response.status_code == 302, response.content[:500]


@pytest.mark.slow
def test_readings_from_the_pages_retrain_a_model_that_the_gate_refuses_then_allows(clinic, tmp_path, nih_sample):
    default, client = clinic
    paths = sorted((nih_sample.root / CLINIC_FOLDER).glob("*.png"))[: EXPORTED + HELD_OUT]
    xrays = upload_all(client, paths)
    marks = marks_that_agree_with(xrays)

    for xray, chosen in zip(xrays[:EXPORTED], marks):
        sign_off(client, xray, chosen)
    assert Reading.objects.signed().count() == EXPORTED

    export = tmp_path / "export"
    out = StringIO()
    call_command("export_readings", "--out", str(export), stdout=out)
    assert f"Exported {EXPORTED} image(s) of {EXPORTED} patient(s)" in out.getvalue()
    with open(export / "Data_Entry_2017.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == EXPORTED and all(int(row["Patient ID"]) >= 10**11 for row in rows)

    # Read after the export: these patients were never exported, so no model trained on them.
    for xray, chosen in zip(xrays[EXPORTED:], marks[EXPORTED:]):
        sign_off(client, xray, chosen)

    nih = nih_sample.build(tmp_path / "nih", nih_sample.pick(64, 120))
    preprocessed = tmp_path / "preprocessed"
    call_command(
        "preprocess", "--data-dir", str(nih), "--data-dir", str(export), "--size", "64", "--workers", "1",
        "--out", str(preprocessed), verbosity=0,
    )
    call_command(
        "train", "--size", "64", "--alpha", "0.25", "--epochs", "1", "--batch-size", "16", "--seed", "1",
        "--data-dir", str(preprocessed), "--name", "clinic-retrained", verbosity=0,
    )
    candidate = ModelVersion.objects.get(name="clinic-retrained")
    assert not candidate.is_active

    out = StringIO()
    call_command("compare", "--candidate", "clinic-retrained", "--data", str(preprocessed), stdout=out)
    assert f"clinic-retrained (candidate) against {default.name} on the test split" in out.getvalue()
    assert "mean" in out.getvalue().lower()

    with pytest.raises(CommandError, match=rf"clinic-retrained is worse than {default.name} on \d+ held-out clinic readings"):
        call_command("activate", "--version", "clinic-retrained", stdout=StringIO())
    default.refresh_from_db()
    candidate.refresh_from_db()
    assert default.is_active and not candidate.is_active

    call_command("activate", "--version", "clinic-retrained", "--force", stdout=StringIO())
    candidate.refresh_from_db()
    assert candidate.is_active
    assert AuditEvent.objects.filter(object_type="modelversion", object_id=candidate.pk, detail__contains="overridden").exists()

    # The shipped model ranks the clinic's readings better: the gate lets it back.
    out = StringIO()
    call_command("activate", "--version", default.name, stdout=out)
    default.refresh_from_db()
    assert default.is_active
    assert f"{default.name} is now the active model, replacing clinic-retrained: the gate passed" in out.getvalue()
