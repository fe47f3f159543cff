import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from diagnosis import inference
from diagnosis.models import Patient
from diagnosis.registry import register_model_version
from diagnosis.tests.tiny_model import build_tiny_artefact

REPO = Path(__file__).resolve().parents[2]
NIH_SAMPLE = Path(os.environ.get("DISPREDO_NIH_SAMPLE", REPO.parent / "shared" / "data" / "nih-sample"))
DICOM_SAMPLE = Path(os.environ.get("DISPREDO_DICOM_SAMPLE", REPO.parent / "shared" / "data" / "dicom-sample"))

# Real NIH images of each kind the sample holds (see its README).
RGBA_1024 = "images_002/images/00001369_000.png"
GRAY_1024 = "images_002/images/00000075_000.png"


def _first_of_size(size):
    from PIL import Image

    for path in sorted((NIH_SAMPLE / "images_001" / "images").glob("*.png")):
        with Image.open(path) as image:
            if image.size == (size, size):
                return path
    raise FileNotFoundError(f"No {size}x{size} image in {NIH_SAMPLE}/images_001")


@pytest.fixture(scope="session")
def nih_sample():
    if not NIH_SAMPLE.is_dir():
        pytest.skip(f"NIH sample not found at {NIH_SAMPLE} (set DISPREDO_NIH_SAMPLE to its folder)")
    return NIH_SAMPLE


@pytest.fixture(scope="session")
def dicom_sample():
    """The folder of real chest X-ray DICOM files (see its README)."""
    if not DICOM_SAMPLE.is_dir():
        pytest.skip(f"DICOM sample not found at {DICOM_SAMPLE} (set DISPREDO_DICOM_SAMPLE to its folder)")
    return DICOM_SAMPLE


@pytest.fixture(scope="session")
def sample_images(nih_sample):
    """Paths of real X-rays: a 1024x1024 RGBA original, a 256x256 and a 64x64 image."""
    return {
        "rgba_1024": nih_sample / RGBA_1024,
        "gray_1024": nih_sample / GRAY_1024,
        "px_256": _first_of_size(256),
        "px_64": _first_of_size(64),
    }


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    inference.clear_cache()
    yield settings.MEDIA_ROOT
    inference.clear_cache()


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("nurse", password="correct horse battery", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def admin_client_(db):
    """A superuser's own client, separate from ``staff_client``."""
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="correct horse battery"))
    return client


@pytest.fixture
def patient(staff):
    return Patient.objects.create(mrn="MRN001", name="Ada Lovelace", sex="F", created_by=staff)


@pytest.fixture
def tiny_model(db, tmp_path):
    """A tiny real ONNX model, registered and active."""
    build_tiny_artefact(tmp_path / "tiny")
    return register_model_version(tmp_path / "tiny", activate=True)


def stored_files(media_root):
    root = Path(media_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def default_model(db, settings):
    """The shipped default model (real networks, holdout scores and input guard), registered and active."""
    return register_model_version(settings.DISPREDO_DEFAULT_MODEL_DIR, activate=True)


def upload_file(client, path, patient=None, **fields):
    """POST ``path`` to the upload page for ``patient``; returns the response (redirects followed)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    data = {"image": SimpleUploadedFile(path.name, path.read_bytes()), **fields}
    if patient is not None:
        data["patient"] = patient.pk
    return client.post(reverse("diagnosis:upload"), data, follow=True)


@pytest.fixture
def reader(db):
    """A staff user in the "Readers" group, so allowed to sign off readings.

    The group is made by migration 0006; a transactional test's flush removes it, so it is made
    again here when missing (test_reading_sign_off checks the migration's group itself)."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="Readers")
    group.permissions.add(Permission.objects.get(content_type__app_label="diagnosis", codename="sign_off_reading"))
    user = get_user_model().objects.create_user("reader", password="correct horse battery", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def reader_client(reader):
    """A client signed in as ``reader``, separate from ``staff_client``."""
    from django.test import Client

    client = Client()
    client.force_login(reader)
    return client


def reading_data(action="save", marks=None, impression="", **fields):
    """POST data of the reading form: every finding marked absent, then ``marks`` on top
    (a value of None leaves that finding unmarked)."""
    from diagnosis.findings import FINDINGS

    chosen = {name: "absent" for name in FINDINGS} | (marks or {})
    return {
        "action": action,
        "impression": impression,
        **{name: value for name, value in chosen.items() if value is not None},
        **fields,
    }


@pytest.fixture
def browser_page(monkeypatch):
    """A page of a fresh headless Chromium at desktop size (browser tests only)."""
    from diagnosis.tests.browser import chromium_page

    with chromium_page(monkeypatch, {"width": 1280, "height": 900}) as page:
        yield page
