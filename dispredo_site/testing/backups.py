"""Building, reading and wiping an installation for the backup and restore tests."""

import hashlib
import shutil
from pathlib import Path

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.test import Client
from django.urls import reverse

from api.models import ApiToken
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.operations.snapshot import MERGED_BY_NAME, backed_up_models, label, serialise_options
from diagnosis.readings import rules as readings
from diagnosis.readings.models import ExportPseudonym
from diagnosis.records.models import Patient, XRay
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.helpers import upload_file

ALL_ABSENT = {name: "absent" for name in FINDINGS}


def populate(staff_client, staff, reader, patient, sample_images, settings):
    """Uploads through the page (scored by the active model), a draft, a signed and an amended
    reading, the shipped default model registered beside the active one, an export pseudonym, an API
    token, a user permission, an admin log entry and a failed sign-in. Returns the API key."""
    register_model_version(settings.DISPREDO_DEFAULT_MODEL_DIR)
    second = Patient.objects.create(mrn="MRN002", name="Grace Hopper", sex="F", created_by=staff, notes="Ünïcode")
    for path, whose in [(sample_images["px_256"], patient), (sample_images["px_64"], patient), (sample_images["gray_1024"], second)]:
        response = upload_file(staff_client, path, whose, view_position="PA", clinical_note="Cough")
        assert response.status_code == 200 and response.redirect_chain, response.content[:300]
    first, other, third = XRay.objects.order_by("pk")
    readings.save_draft(first, staff, {"Effusion": "present"}, "Possible effusion.")
    readings.sign_off(other, reader, ALL_ABSENT, "Normal.")
    readings.amend(other, reader, ALL_ABSENT | {"Nodule": "present"}, "Small nodule.", "Seen on review.")
    readings.sign_off(third, reader, ALL_ABSENT | {"Effusion": "present"}, "Effusion.")
    ExportPseudonym.objects.create(patient=second, number=123456789012)
    _, key = ApiToken.issue(staff, "RIS gateway")
    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    LogEntry.objects.create(
        user=reader, content_type=ContentType.objects.get_for_model(Patient), object_id=str(patient.pk),
        object_repr=str(patient), action_flag=CHANGE, change_message="Changed notes.",
    )
    Client().post(reverse("login"), {"username": "nurse", "password": "not the password"})
    return key


def rows():
    """Every row a snapshot holds, serialised by Django, per model; groups by name."""
    result = {}
    for model in backed_up_models():
        options = serialise_options(model)
        del options["cls"]
        serialised = serializers.serialize("python", model._base_manager.order_by("pk"), **options)
        if label(model) in MERGED_BY_NAME:
            serialised.sort(key=lambda row: row["fields"]["name"])
        result[label(model)] = serialised
    return result


def stored_files():
    """{name: SHA-256} of every X-ray's file, read through the storage API."""
    storage = XRay._meta.get_field("image").storage
    result = {}
    for name in XRay.objects.values_list("image", flat=True):
        with storage.open(name, "rb") as handle:
            result[name] = hashlib.sha256(handle.read()).hexdigest()
    return result


def wipe(settings, *folders):
    """Leave what a freshly migrated installation has: content types, permissions and the Readers
    group (with no members); no rows of anything else a snapshot holds, no X-ray or model files."""
    for model in reversed(backed_up_models()):
        rows = model._base_manager.all()
        if label(model) in MERGED_BY_NAME:
            rows = rows.exclude(name="Readers")
        rows.delete()
    for folder in (settings.MEDIA_ROOT, settings.DISPREDO_MODEL_DIR, *folders):
        shutil.rmtree(folder, ignore_errors=True)


def files_under(folder):
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def readers_group(pk=None):
    """The "Readers" group as migration 0006 makes it (with ``pk`` when given)."""
    Group.objects.filter(name="Readers").delete()
    group = Group.objects.create(pk=pk, name="Readers")
    group.permissions.add(Permission.objects.get(content_type__app_label="diagnosis", codename="sign_off_reading"))
    return group
