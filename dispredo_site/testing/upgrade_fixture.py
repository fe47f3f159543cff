"""Writes ``upgrade_f87ee09.json``: the database of an installation made by the code of commit
f87ee09 (diagnosis at migration 0008), for the upgrade test (``dispredo_site/tests/test_upgrade.py``).

The old code itself makes the installation, so the rows are what it wrote. From this repository's
root, with its Python environment, against a checkout of that commit::

    git worktree add /tmp/old f87ee09
    .venv/bin/python dispredo_site/testing/upgrade_fixture.py /tmp/old
    git worktree remove /tmp/old

The committed dump was made so on 2026-12-08 (Django 5.2.19, SQLite; both recorded in it). Run it
again only against f87ee09: a dump of newer code would no longer test an upgrade from f87ee09.

It starts a fresh data folder (SQLite, media, models) in a temporary directory, runs ``migrate``,
registers the tiny test model (old ``diagnosis/tests/tiny_model.py``) as the active version, and
then works through the old pages, API and service functions with Django's test client:

- users: an administrator, a nurse (staff), a reader in the "Readers" group, a clerk with one
  permission of their own; a failed and a successful sign-in (axes' rows), an API token made with
  the password (its key is kept in the dump, so the test can use it);
- patients: one from the patient page, one typed in the upload form with a lower-case record number
  (the old code upper-cased it), one from the API, one from a DICOM header; an edit on the patient
  page and one in the admin (the admin's log);
- X-rays: a synthetic PNG (``upgrade_rows.synthetic_png``) through the upload page for each of the
  first two, one through the API, and a real chest DICOM (``rsna_cr_pa_normal.dcm`` of the DICOM
  sample) through the old listener's ``dicom_receiver.receive(data, "MODALITY1")``, so its user and
  clinical note are the listener's; a hip DICOM refused by the listener; all scored by the tiny model;
- readings (old ``diagnosis.readings``): a draft saved twice, a sign-off, a sign-off then amended;
- page and API views, the readings exported for training (``export_readings``: export events and
  pseudonyms), and the second tiny model activated through the gate (forced, should it refuse).

Then it dumps every table of the apps in ``upgrade_rows.APPS`` (sessions and the rate-count cache are
left out: nothing of a clinic's record is in them), the migration each app was at, and the X-ray
files by name with their SHA-256 and where the test gets their bytes again: the PNGs from their
seed, the DICOM file from the DICOM sample (never copied into the repository). The models' files are
recorded by how to rebuild them (the tiny model's name and seed).
"""

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

SOURCE_COMMIT = "f87ee09d417bfdf449a94bece81a4fb0d3b0a203"
PASSWORD = "correct horse battery"
DICOM_FILE = "rsna_cr_pa_normal.dcm"
NOT_A_CHEST = "nema_rg2_cr_hip_jpeg_lossy.dcm"
CALLING_AE = "MODALITY1"
SEEDS = (1, 2, 3)  # of the synthetic PNGs sent through the pages and the API
HERE = Path(__file__).resolve().parent


def _rows_module():
    # By path: the old checkout's dispredo_site.testing has no upgrade_rows.
    spec = importlib.util.spec_from_file_location("upgrade_rows", HERE / "upgrade_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start_old_code(old, data_dir):
    commit = subprocess.run(["git", "-C", str(old), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    if commit.stdout.strip() != SOURCE_COMMIT:
        raise SystemExit(f"{old} is at {commit.stdout.strip()}, not {SOURCE_COMMIT}: check that commit out there.")
    for name in ("DATABASE_URL", "DISPREDO_MEDIA_ROOT", "DISPREDO_MODEL_DIR", "DISPREDO_STORAGE"):
        os.environ.pop(name, None)  # SQLite and files in the new data folder
    os.environ.update(DISPREDO_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="dispredo_site.settings")
    sys.path[:] = [str(old)] + [entry for entry in sys.path[1:] if Path(entry or ".").resolve() != HERE]
    os.chdir(old)
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()  # the test client's host and outbox
    logging.disable(logging.INFO)  # the old code's request and scoring lines
    warnings.filterwarnings("ignore", "No directory at")  # no collected static files: none needed


def build_installation(data_dir, dicom_sample, synthetic_png):
    """Make the old installation's records through its own code; returns what the dump records
    besides the rows (the API token's key, how to rebuild the model versions' files)."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    artefacts = _model_versions(data_dir)
    clients = _users_and_sign_ins()
    key = _patients_and_xrays(clients, dicom_sample, synthetic_png)
    _readings_views_export_and_activation(clients, data_dir)
    _admin_change(clients["admin"])
    return {"api_token_key": key, "artefacts": artefacts}


def _model_versions(data_dir):
    """Two tiny models (old ``diagnosis/tests/tiny_model.py``), the first active."""
    from diagnosis.registry import register_model_version
    from diagnosis.tests.tiny_model import build_tiny_artefact

    artefacts = {}
    for name, seed, active in (("tiny-test-model", 0, True), ("tiny-test-model-2", 1, False)):
        directory = data_dir / "models" / name
        build_tiny_artefact(directory, name=name, seed=seed)
        artefacts[register_model_version(directory, activate=active).artefact_path] = {"name": name, "seed": seed}
    return artefacts


def _users_and_sign_ins():
    """The users, a failed and a successful sign-in on the page; a signed-in client of each user."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.test import Client

    users = get_user_model().objects
    boss = users.create_superuser("boss", "boss@clinic.example", PASSWORD, first_name="Barbara", last_name="Boss")
    users.create_user("nurse", "nurse@clinic.example", PASSWORD, is_staff=True, first_name="Nora")
    reader = users.create_user("reader", "reader@clinic.example", PASSWORD, is_staff=True, first_name="Rita")
    reader.groups.add(Group.objects.get(name="Readers"))  # made by migration 0006
    clerk = users.create_user("clerk", "clerk@clinic.example", PASSWORD, is_staff=True)
    audit_view = Permission.objects.get(content_type__app_label="diagnosis", codename="view_auditevent")
    clerk.user_permissions.add(audit_view)

    staff = Client()
    assert staff.post("/accounts/login/", {"username": "nurse", "password": "wrong"}).status_code == 200
    assert staff.post("/accounts/login/", {"username": "nurse", "password": PASSWORD}).status_code == 302
    admin, reading_room = Client(), Client()
    admin.force_login(boss)
    reading_room.force_login(reader)
    return {"staff": staff, "admin": admin, "reader": reading_room}


def _patients_and_xrays(clients, dicom_sample, synthetic_png):
    """Patients and X-rays through the patient page, the upload page, the API and the DICOM
    listener (and one object it refuses); returns the API token's key."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from diagnosis import dicom_receiver
    from diagnosis.models import Patient

    def upload(client, path, seed, **fields):
        image = SimpleUploadedFile(f"chest-{seed}.png", synthetic_png(seed), content_type="image/png")
        extra = {"format": "multipart"} if isinstance(client, APIClient) else {}
        response = client.post(path, {"image": image, **fields}, **extra)
        assert response.status_code in (201, 302), response.content
        return response

    staff = clients["staff"]
    ada = {"mrn": "UPG-001", "name": "Ada Lovelace", "sex": "F", "date_of_birth": "1815-12-10", "notes": "Asthma."}
    assert staff.post("/patients/new/", ada).status_code == 302
    upload(staff, "/upload/", 1, patient=Patient.objects.get(mrn="UPG-001").pk, view_position="PA", clinical_note="Cough.")
    upload(
        staff, "/upload/", 2, new_mrn="upg-lower-002", new_name="Grace Hopper", new_sex="F",
        new_date_of_birth="1906-12-09", view_position="AP",
    )
    grace = Patient.objects.get(mrn="UPG-LOWER-002")  # upper-cased by f87ee09's PatientForm
    edit = {"mrn": grace.mrn, "name": grace.name, "sex": "F", "date_of_birth": "1906-12-09", "notes": "Ward 3."}
    assert staff.post(f"/patients/{grace.pk}/edit/", edit).status_code == 302

    api = APIClient()
    response = api.post("/api/tokens/", {"username": "nurse", "password": PASSWORD, "name": "RIS"})
    assert response.status_code == 201, response.content
    key = response.json()["key"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/patients/", {"mrn": "UPG-003", "name": "Alan Turing", "sex": "M"})
    assert response.status_code == 201, response.content
    xray = upload(api, "/api/xrays/", 3, patient=response.json()["id"], view_position="PA", clinical_note="From the RIS.")
    assert api.get(f"/api/xrays/{xray.json()['id']}/").status_code == 200

    received = dicom_receiver.receive((dicom_sample / DICOM_FILE).read_bytes(), CALLING_AE)
    assert received.status == dicom_receiver.SUCCESS, received.message
    refused = dicom_receiver.receive((dicom_sample / NOT_A_CHEST).read_bytes(), CALLING_AE)
    assert refused.status == dicom_receiver.REFUSED, refused.message
    return key


def _readings_views_export_and_activation(clients, data_dir):
    """Views of every X-ray and of the patient list; a draft saved twice, a sign-off, a sign-off
    then amended (old ``diagnosis.readings``); a report; the readings exported; the second model
    activated."""
    from django.contrib.auth import get_user_model

    from diagnosis import activation, readings
    from diagnosis.findings import FINDINGS
    from diagnosis.models import ModelVersion, XRay
    from mltrain.readings_export import export_readings

    page, typed, by_api, dicom = XRay.objects.order_by("pk")
    for xray in (page, typed, by_api, dicom):
        assert xray.status == "done", (xray.pk, xray.status, xray.error)
        assert clients["staff"].get(f"/xrays/{xray.pk}/").status_code == 200
    assert clients["staff"].get("/patients/").status_code == 200

    users = get_user_model().objects
    nurse, reader, boss = (users.get(username=name) for name in ("nurse", "reader", "boss"))
    readings.save_draft(page, nurse, {"Effusion": "present"}, "Possible small effusion.")
    readings.save_draft(page, nurse, {"Effusion": "present", "Cardiomegaly": "absent"}, "Small right effusion.")
    absent = {finding: "absent" for finding in FINDINGS}
    readings.sign_off(typed, reader, absent, "No acute findings.")
    readings.sign_off(dicom, reader, absent, "Normal chest.")
    readings.amend(dicom, reader, {**absent, "Nodule": "present"}, "Small nodule, right apex.", "Second look at the apex.")
    assert clients["reader"].get(f"/xrays/{dicom.pk}/report/").status_code == 200

    assert export_readings(data_dir / "export", user=boss).images == 2
    activation.activate(ModelVersion.objects.get(name="tiny-test-model-2"), user=boss, force=True)


def _admin_change(admin):
    """A patient's notes changed in the admin (its log), its form posted back as the page filled it."""
    from diagnosis.models import Patient

    url = f"/admin/diagnosis/patient/{Patient.objects.get(mrn='UPG-003').pk}/change/"
    change = admin.get(url)
    forms = [change.context["adminform"].form]
    for formset in change.context["inline_admin_formsets"]:
        forms += [formset.formset.management_form, *formset.formset.forms]
    data = {form.add_prefix(name): form[name].value() for form in forms for name in form.fields}
    data = {name: value for name, value in data.items() if value is not None}
    response = admin.post(url, {**data, "notes": "Allergic to contrast.", "_save": "Save"})
    assert response.status_code == 302, response.context["adminform"].form.errors


def media_files(media_root, sources):
    """Every file under ``media_root``: name, SHA-256 and the source ``sources`` gives for its digest."""
    files = []
    for path in sorted(p for p in Path(media_root).rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in sources:
            raise SystemExit(f"{path} is none of the X-rays this script sent; the dump would miss it.")
        files.append({"name": path.relative_to(media_root).as_posix(), "sha256": digest, **sources[digest]})
    return files


def main(argv):
    if len(argv) != 2:
        raise SystemExit(f"Usage: {argv[0]} CHECKOUT_OF_{SOURCE_COMMIT[:7]}")
    old = Path(argv[1]).resolve()
    rows = _rows_module()
    dicom_sample = Path(os.environ.get("DISPREDO_DICOM_SAMPLE", HERE.parents[2] / "shared" / "data" / "dicom-sample"))
    if not (dicom_sample / DICOM_FILE).is_file():
        raise SystemExit(f"No {DICOM_FILE} in {dicom_sample}: set DISPREDO_DICOM_SAMPLE to the DICOM sample's folder.")
    with tempfile.TemporaryDirectory(prefix="dispredo-upgrade-fixture-") as folder:
        data_dir = Path(folder)
        _start_old_code(old, data_dir)
        import django
        from django.apps import apps
        from django.conf import settings
        from django.db import connection
        from django.db.migrations.loader import MigrationLoader

        made = build_installation(data_dir, dicom_sample, rows.synthetic_png)
        sources = {hashlib.sha256(rows.synthetic_png(seed)).hexdigest(): {"synthetic_png": seed} for seed in SEEDS}
        sources[hashlib.sha256((dicom_sample / DICOM_FILE).read_bytes()).hexdigest()] = {"dicom_sample": DICOM_FILE}
        loader = MigrationLoader(connection)
        leaves = dict(loader.graph.leaf_nodes())
        assert set(loader.applied_migrations) == set(loader.graph.nodes), "not every migration was applied"
        tables = rows.dump_tables(apps)
        left_out = set(connection.introspection.table_names()) - {entry["table"] for entry in tables}
        cache_table = settings.CACHES[settings.DISPREDO_API_THROTTLE_CACHE]["LOCATION"]
        if left_out != {"django_migrations", "django_session", cache_table}:
            raise SystemExit(f"Tables neither dumped nor known to be left out: {sorted(left_out)}")
        dump = {
            "made_by": "dispredo_site/testing/upgrade_fixture.py",
            "commit": SOURCE_COMMIT,
            "django": django.get_version(),
            "password": PASSWORD,
            "calling_ae_title": CALLING_AE,
            "migrations": dict(sorted(leaves.items())),
            **made,
            "media": media_files(settings.MEDIA_ROOT, sources),
            "tables": tables,
        }
    text = dump_text(dump)
    rows.DUMP_FILE.write_text(text)
    sys.stdout.write(f"Wrote {rows.DUMP_FILE}: {len(text) // 1024} KB, {sum(len(t['rows']) for t in tables)} rows.\n")


def dump_text(dump):
    """The dump as JSON with one table row a line, so a regenerated dump diffs row by row."""
    head = json.dumps({key: value for key, value in dump.items() if key != "tables"}, indent=1, ensure_ascii=False)
    tables = ",\n".join(
        f' {{"table": {json.dumps(entry["table"])}, "rows": [\n'
        + ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in entry["rows"])
        + "\n ]}"
        for entry in dump["tables"]
    )
    return head[:-2] + ',\n "tables": [\n' + tables + "\n ]\n}\n"


if __name__ == "__main__":
    main(sys.argv)
