"""An installation made by the code of f87ee09 (diagnosis at migration 0008, where issue 24 starts)
upgrades with ``migrate`` and loses nothing.

Each test takes the test database back to f87ee09's migration state (every app at the migration it
had then), writes the rows that f87ee09 itself wrote (``dispredo_site/testing/upgrade_f87ee09.json``,
made by ``upgrade_fixture.py``) with plain SQL, writes the X-ray files again, and runs ``manage.py
migrate`` as an administrator would, to whatever migration is latest. The model versions' files are
rebuilt in the test's folder and the versions point there, as after moving the data folder.

When a later migration changes a dumped value or column on purpose, say so here (and check the new
value); never regenerate the dump with newer code: it must stay what f87ee09 wrote.
"""

import copy
import hashlib
import io

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from diagnosis.intake.dicom_records import DUPLICATE_MESSAGE
from diagnosis.interop import dicom_listener
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.rules import current_reading, earlier_versions, reading_state
from diagnosis.records.models import Patient, XRay
from diagnosis.storage.xrays import xray_storage
from dispredo_core.imaging import open_xray
from dispredo_site.testing.helpers import bearer
from dispredo_site.testing.tiny_model import build_tiny_artefact
from dispredo_site.testing.upgrade_rows import (
    fields_by_column, load_dump, models_by_table, rows_of, synthetic_png, write_tables,
)

pytestmark = pytest.mark.django_db(transaction=True)  # migrations cannot run inside a test's transaction

DUMP = load_dump()
DICOM_NOTE = f"Received from DICOM AE {DUMP['calling_ae_title']}."
# Tables to which ``migrate`` itself adds rows: the content types and permissions of new models.
GROWN_BY_MIGRATE = {"django_content_type", "auth_permission"}
CASE_CLASH = (
    "These patients' record numbers differ only in case, which Dispredo now treats as the same record "
    "number: AB-12, Ab-12. Change or merge them in the admin, then run migrate again."
)


def old_state():
    """Migration targets of f87ee09's state: each app at its migration then; apps it did not have, at none."""
    graph = MigrationExecutor(connection).loader.graph
    return [(app, DUMP["migrations"].get(app)) for app in sorted({app for app, _ in graph.nodes})]


def migrate_to(targets):
    """Migrate the test database to ``targets``; returns the models of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state([target for target in targets if target[1]]).apps


def upgrade():
    call_command("migrate", interactive=False, verbosity=0)


def at_latest():
    executor = MigrationExecutor(connection)
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


def leave_at_latest():
    """Back to the latest migrations for the tests after these; when a failed upgrade left the
    database behind, the dumped tables are emptied first (their rows may be what stopped it)."""
    if at_latest():
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for entry in reversed(DUMP["tables"]):
            if entry["table"] in existing:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(entry['table'])}")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def rows(tables, table):
    return next(entry["rows"] for entry in tables if entry["table"] == table)


def install_f87ee09(tmp_path, dicom_sample=None):
    """The f87ee09 installation in the test database and X-ray storage; returns its rows as written.

    Without ``dicom_sample`` the DICOM X-ray's file is left out (its row is there all the same)."""
    tables = copy.deepcopy(DUMP["tables"])
    for row in rows(tables, "diagnosis_modelversion"):
        build = DUMP["artefacts"][row["artefact_path"]]
        row["artefact_path"] = str(tmp_path / "artefacts" / build["name"])
        build_tiny_artefact(tmp_path / "artefacts" / build["name"], **build)
    write_tables(connection, migrate_to(old_state()), tables)
    ContentType.objects.clear_cache()  # the ids are f87ee09's now
    for media in DUMP["media"]:
        if "synthetic_png" in media:
            content = synthetic_png(media["synthetic_png"])
        elif dicom_sample is not None:
            content = (dicom_sample / media["dicom_sample"]).read_bytes()
        else:
            continue
        assert hashlib.sha256(content).hexdigest() == media["sha256"], f"{media} is not the file f87ee09 stored"
        assert xray_storage.save(media["name"], ContentFile(content)) == media["name"]
    return tables


@pytest.fixture
def upgraded(transactional_db, tmp_path):
    """The f87ee09 installation, upgraded with ``migrate``; its rows as written. The database is at
    the latest migrations afterwards whatever happened."""
    try:
        tables = install_f87ee09(tmp_path)
        upgrade()
        yield tables
    finally:
        leave_at_latest()


def read_back(file_field):
    with file_field.open("rb") as stored:
        return stored.read()


def test_migrate_keeps_every_row_of_an_installation_at_f87ee09_with_its_values(upgraded):
    assert at_latest()
    models = models_by_table(django_apps)
    changed = []
    for entry in upgraded:
        model = models.get(entry["table"])
        assert model is not None, f"No model has the table {entry['table']} now: its rows would be lost"
        pk = model._meta.pk.column
        now = {row[pk]: row for row in rows_of(model)}
        for row in entry["rows"]:
            missing = set(row) - set(fields_by_column(model))
            assert not missing, f"{entry['table']} has lost the columns {sorted(missing)}"
            kept = now.get(row[pk])
            if kept is None:
                changed.append(f"{entry['table']} {row[pk]}: lost")
                continue
            changed += [
                f"{entry['table']} {row[pk]}.{column}: {value!r} became {kept[column]!r}"
                for column, value in row.items()
                if kept[column] != value
            ]
        if entry["table"] not in GROWN_BY_MIGRATE:
            changed += [f"{entry['table']} {pk}: added" for pk in sorted(set(now) - {row[pk] for row in entry["rows"]})]
    assert not changed, "\n".join(changed)
    # The dump holds what the issue asks for: every kind of record, and each kind of audit event.
    assert all(rows(upgraded, table) for table in (
        "diagnosis_patient", "diagnosis_xray", "diagnosis_prediction", "diagnosis_reading", "diagnosis_modelversion",
        "diagnosis_auditevent", "diagnosis_exportpseudonym", "auth_user", "auth_group", "auth_group_permissions",
        "api_apitoken", "axes_accesslog", "django_admin_log",
    ))
    assert {row["action"] for row in rows(upgraded, "diagnosis_auditevent")} == {"view", "create", "change", "export"}


def test_migrate_marks_the_listeners_xray_as_dicom_and_makes_record_numbers_unique_ignoring_case(upgraded):
    # The DICOM listener's X-ray, with the AE title of its clinical note; the page and the API did
    # not say which they were.
    expected = sorted(
        (row["id"], "dicom", DUMP["calling_ae_title"]) if row["clinical_note"] == DICOM_NOTE else (row["id"], "", "")
        for row in rows(upgraded, "diagnosis_xray")
    )
    assert sorted(XRay.objects.values_list("pk", "source", "calling_ae_title")) == expected
    assert [source for _, source, _ in expected].count("dicom") == 1
    # f87ee09 upper-cased the record number typed "upg-lower-002"; that spelling is the same number now.
    assert "UPG-LOWER-002" in [row["mrn"] for row in rows(upgraded, "diagnosis_patient")]
    with pytest.raises(ValidationError) as clash:
        Patient(mrn="upg-lower-002", name="Someone Else").validate_constraints()
    assert clash.value.messages == ["Patient with this Medical record number already exists."]


def test_the_upgraded_readings_permissions_pages_api_and_model_work(upgraded):
    users = get_user_model().objects
    nurse, reader, clerk = (users.get(username=name) for name in ("nurse", "reader", "clerk"))
    assert reader.has_perm("diagnosis.sign_off_reading") and not nurse.has_perm("diagnosis.sign_off_reading")
    assert clerk.has_perm("diagnosis.view_auditevent") and not nurse.has_perm("diagnosis.view_auditevent")
    assert list(reader.groups.values_list("name", flat=True)) == ["Readers"]

    draft = XRay.objects.get(pk=rows(upgraded, "diagnosis_reading")[0]["xray_id"])
    signed = XRay.objects.get(patient__mrn="UPG-LOWER-002")
    dicom = XRay.objects.get(clinical_note=DICOM_NOTE)
    assert reading_state(draft) == "draft"
    assert reading_state(signed) == "signed" and current_reading(signed).signed_by == reader
    amended = current_reading(dicom)
    assert (amended.version, amended.status, amended.amendment_reason) == (2, "signed", "Second look at the apex.")
    assert [(earlier.version, earlier.status) for earlier in earlier_versions(dicom, amended)] == [(1, "signed")]

    for xray in XRay.objects.exclude(pk=dicom.pk):  # the files open as the X-rays they were
        content = read_back(xray.image)
        assert hashlib.sha256(content).hexdigest() == xray.sha256
        assert open_xray(content).size == (xray.width, xray.height)

    # Signing in checks f87ee09's password hash and axes' records of earlier sign-ins.
    staff = Client()
    assert staff.post(reverse("login"), {"username": "nurse", "password": DUMP["password"]}).status_code == 302
    for xray in XRay.objects.all():
        page = staff.get(reverse("diagnosis:xray_detail", args=[xray.pk]))
        assert page.status_code == 200 and xray.patient.name in page.content.decode()
    report = staff.get(reverse("diagnosis:xray_report", args=[signed.pk]))
    assert report.status_code == 200 and "No acute findings." in report.content.decode()
    image = staff.get(reverse("diagnosis:xray_image", args=[draft.pk]))
    assert image.status_code == 200 and b"".join(image.streaming_content) == read_back(draft.image)

    api = APIClient()  # with the token made at f87ee09
    api.credentials(**bearer(DUMP["api_token_key"]))
    listed = api.get("/api/xrays/")
    assert listed.status_code == 200
    assert sorted(item["id"] for item in listed.json()["results"]) == sorted(XRay.objects.values_list("pk", flat=True))

    # A new X-ray of a migrated patient comes after the migrated ones (the id sequences follow the
    # written rows) and is scored by the migrated active version.
    upload = SimpleUploadedFile("chest-4.png", synthetic_png(4), content_type="image/png")
    assert staff.post(reverse("diagnosis:upload"), {"patient": draft.patient_id, "image": upload}).status_code == 302
    new = XRay.objects.latest("pk")
    assert new.pk == max(row["id"] for row in rows(upgraded, "diagnosis_xray")) + 1
    assert (new.status, new.source) == ("done", "page")
    assert set(new.predictions.values_list("model_version__name", flat=True)) == {"tiny-test-model-2"}
    assert ModelVersion.objects.get(is_active=True).name == "tiny-test-model-2"


def test_the_dicom_xray_received_at_f87ee09_opens_and_is_still_known_to_the_listener(tmp_path, dicom_sample):
    try:
        install_f87ee09(tmp_path, dicom_sample)
        upgrade()

        (media,) = [media for media in DUMP["media"] if "dicom_sample" in media]
        xray = XRay.objects.get(image=media["name"])
        assert (xray.source, xray.calling_ae_title) == ("dicom", DUMP["calling_ae_title"])
        content = read_back(xray.image)
        assert hashlib.sha256(content).hexdigest() == xray.sha256
        assert open_xray(content).size == (xray.width, xray.height)

        staff = Client()
        staff.force_login(get_user_model().objects.get(username="nurse"))
        assert staff.get(reverse("diagnosis:xray_detail", args=[xray.pk])).status_code == 200
        image = staff.get(reverse("diagnosis:xray_image", args=[xray.pk]))
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
        with Image.open(io.BytesIO(image.content)) as rendered:
            assert rendered.format == "PNG"

        again = dicom_listener.receive(content, DUMP["calling_ae_title"])
        assert again.status == dicom_listener.REFUSED
        assert again.message == DUPLICATE_MESSAGE.format(
            uid=xray.sop_instance_uid, pk=xray.pk, patient=xray.patient, url=xray.get_absolute_url()
        )
        assert XRay.objects.count() == len(rows(DUMP["tables"], "diagnosis_xray"))
    finally:
        leave_at_latest()


def test_the_upgrade_refuses_record_numbers_differing_only_in_case_and_stays_at_f87ee09s_state():
    try:
        old = migrate_to(old_state())
        OldPatient = old.get_model("diagnosis", "Patient")
        for mrn in ("AB-12", "Ab-12", "CD-34"):  # f87ee09's admin took a record number in any case
            OldPatient.objects.create(mrn=mrn, name="Ann Bee")

        with pytest.raises(RuntimeError) as refused:
            upgrade()

        assert str(refused.value) == CASE_CLASH
        applied = MigrationRecorder(connection).applied_migrations()
        assert ("diagnosis", DUMP["migrations"]["diagnosis"]) in applied
        assert ("diagnosis", "0009_intake_sources_scoring_claims_and_record_numbers") not in applied
        with connection.cursor() as cursor:
            columns = {column.name for column in connection.introspection.get_table_description(cursor, "diagnosis_xray")}
        assert {"source", "calling_ae_title", "scoring_by"}.isdisjoint(columns)
        assert "diagnosis_incomingfile" not in connection.introspection.table_names()
        assert sorted(OldPatient.objects.values_list("mrn", flat=True)) == ["AB-12", "Ab-12", "CD-34"]
    finally:
        leave_at_latest()
