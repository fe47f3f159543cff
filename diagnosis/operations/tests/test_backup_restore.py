"""manage.py backup and restore: a populated installation comes back identical, row by row and file by file."""

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.operations.snapshot import DATABASE, MANIFEST, NOT_BACKED_UP, backed_up_models, digest_file, label
from diagnosis.readings.models import Reading
from diagnosis.records.models import AuditEvent, Patient, Prediction
from dispredo_core.artefact import resolve
from dispredo_site.testing.backups import files_under, populate, readers_group, rows, stored_files, wipe
from dispredo_site.testing.helpers import REPO, bearer

# A new server: migrate a new SQLite database in its own data folder, restore, and back it up again.
NEW_SERVER = """
import sys, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("restore", sys.argv[1], verbosity=0)
call_command("backup", out=sys.argv[2], verbosity=0)
"""

# Rate counts in memory, not in the database's cache table that a restore replaces.
pytestmark = pytest.mark.usefixtures("fresh_rate_counts")


def without_restore_event(snapshot_rows):
    events = snapshot_rows["diagnosis.auditevent"]
    restored = [row for row in events if row["fields"]["object_type"] == "restore"]
    snapshot_rows["diagnosis.auditevent"] = [row for row in events if row["fields"]["object_type"] != "restore"]
    return restored


def artefact_paths(snapshot_rows):
    return {row["fields"]["name"]: row["fields"].pop("artefact_path") for row in snapshot_rows["diagnosis.modelversion"]}


@pytest.mark.django_db(transaction=True)
def test_a_restored_installation_is_identical_row_by_row_and_file_by_file(
    staff_client, staff, reader, patient, tiny_model, sample_images, settings, tmp_path
):
    key = populate(staff_client, staff, reader, patient, sample_images, settings)
    before, files_before = rows(), stored_files()
    assert len(before["diagnosis.xray"]) == 3 and len(before["diagnosis.prediction"]) == 42
    assert len(before["diagnosis.reading"]) == 4 and len(before["axes.accessattempt"]) == 1
    tiny_folder = resolve(tiny_model.artefact_path)
    snapshot = tmp_path / "snapshots" / "2026-01-01"
    snapshot.parent.mkdir()

    started = time.monotonic()
    call_command("backup", out=str(snapshot), stdout=StringIO())
    backup_seconds = time.monotonic() - started
    manifest = json.loads((snapshot / MANIFEST).read_text())
    assert manifest["counts"]["diagnosis.patient"] == 2 and manifest["counts"]["diagnosis.xray"] == 3
    latest = max(name for app, name in MigrationLoader(connection).graph.leaf_nodes() if app == "diagnosis")
    assert manifest["migrations"]["diagnosis"] == latest
    assert [p.name for p in snapshot.parent.iterdir()] == ["2026-01-01"]  # no temporary folder left
    # The backup itself is audited, after the snapshot: it is not in it.
    assert AuditEvent.objects.filter(object_type="backup", action="export").count() == 1

    wipe(settings, tiny_folder)
    readers_group(pk=before["auth.user"][0]["pk"] + 40)  # as migrate makes it, under an id of its own
    out = StringIO()
    started = time.monotonic()
    call_command("restore", str(snapshot), stdout=out)
    restore_seconds = time.monotonic() - started
    print(f"backup {backup_seconds:.2f} s, restore {restore_seconds:.2f} s")

    after = rows()
    [restore_event] = without_restore_event(after)
    assert restore_event["fields"]["detail"].startswith(f"restored the snapshot of {manifest['created_at']}")
    before_paths, after_paths = artefact_paths(before), artefact_paths(after)
    assert after == before
    assert stored_files() == files_before
    # The shipped default is identical in this checkout, so it stays referenced; the tiny model lived
    # outside the model folder, so it was put there and its path rewritten.
    [shipped] = [name for name, path in before_paths.items() if path == "models/default"]
    assert after_paths[shipped] == "models/default"
    restored_tiny = Path(after_paths[tiny_model.name])
    assert restored_tiny == Path(settings.DISPREDO_MODEL_DIR) / tiny_folder.name
    assert {p.name: digest_file(p) for p in files_under(restored_tiny)} == {
        p.name: digest_file(p) for p in files_under(snapshot / "artefacts" / tiny_folder.name)
    }
    assert ModelVersion.active().name == tiny_model.name
    assert "Restored" in out.getvalue() and "3 X-rays (diagnosis.xray)" in out.getvalue()

    # The restored installation works: ids go on after the restored ones, the token and passwords
    # are valid, and the reader may still sign off through the Readers group it was restored into.
    assert Patient.objects.create(mrn="NEW", name="New").pk > max(row["pk"] for row in before["diagnosis.patient"])
    assert restore_event["pk"] > max(row["pk"] for row in before["diagnosis.auditevent"])
    assert Client().get("/api/patients/", **bearer(key)).status_code == 200
    restored_reader = get_user_model().objects.get(username="reader")
    assert restored_reader.check_password("correct horse battery")
    assert restored_reader.has_perm("diagnosis.sign_off_reading")
    assert Prediction.objects.count() == 42 and Reading.objects.signed().count() == 3


@pytest.mark.django_db
def test_every_model_is_either_in_a_snapshot_or_left_out_for_a_stated_reason(django_db_setup):
    from django.apps import apps

    chosen = {label(model) for model in backed_up_models()}
    undecided = [label(m) for m in apps.get_models() if label(m) not in chosen and label(m) not in NOT_BACKED_UP]
    assert undecided == []
    assert {"diagnosis.patient", "diagnosis.xray", "diagnosis.prediction", "diagnosis.reading",
            "diagnosis.modelversion", "diagnosis.auditevent", "api.apitoken", "auth.user", "auth.group"} <= chosen


@pytest.mark.django_db
def test_the_database_dump_keeps_times_to_the_microsecond(staff, patient, tmp_path):
    patient.created_at = patient.created_at.replace(microsecond=123456)
    Patient.objects.filter(pk=patient.pk).update(created_at=patient.created_at)
    call_command("backup", out=str(tmp_path / "snap"), stdout=StringIO())
    line = next(line for line in (tmp_path / "snap" / DATABASE).read_text().splitlines() if '"diagnosis.patient"' in line)
    assert json.loads(line)["fields"]["created_at"] == patient.created_at.isoformat()
    assert ".123456" in patient.created_at.isoformat()



def dumped(folder):
    return [json.loads(line) for line in (folder / DATABASE).read_text(encoding="utf-8").splitlines()]


@pytest.mark.django_db
def test_a_snapshot_restores_on_a_new_server_in_another_process(
    staff_client, staff, reader, patient, tiny_model, sample_images, settings, tmp_path
):
    """Whatever database the suite runs on, the snapshot restores into a new SQLite installation;
    a snapshot of that holds the same rows and files."""
    populate(staff_client, staff, reader, patient, sample_images, settings)
    snapshot, again = tmp_path / "snapshot", tmp_path / "again"
    call_command("backup", out=str(snapshot), stdout=StringIO())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DISPREDO_"))}
    env.update(DJANGO_SETTINGS_MODULE="dispredo_site.settings", DISPREDO_DATA_DIR=str(tmp_path / "new-server"))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", NEW_SERVER, str(snapshot), str(again)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    print(f"new server: migrate, restore and backup in {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-2000:]

    first, second = dumped(snapshot), dumped(again)
    [restore_event] = [row for row in second if row["model"] == "diagnosis.auditevent" and row["fields"]["object_type"] == "restore"]
    second.remove(restore_event)
    paths = {}
    for row in first + second:
        if row["model"] == "diagnosis.modelversion":
            paths.setdefault(row["fields"]["name"], []).append(row["fields"].pop("artefact_path"))
    assert second == first
    assert paths[tiny_model.name][1] == str(tmp_path / "new-server" / "models" / resolve(tiny_model.artefact_path).name)
    media = [[e for e in json.loads((f / MANIFEST).read_text())["files"] if e["path"].startswith("media/")] for f in (snapshot, again)]
    assert media[0] == media[1] and len(media[0]) == 3
