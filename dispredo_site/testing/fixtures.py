"""The fixtures every test folder shares (loaded by the root conftest.py as a pytest plugin): users
and clients, a patient, the tiny and the shipped models, private media, the data samples, API
clients, empty rate counts and a headless browser page."""

import pytest
from django.contrib.auth import get_user_model

from diagnosis.lifecycle import predictors
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Patient
from dispredo_site.testing.helpers import DICOM_SAMPLE, GRAY_1024, NIH_SAMPLE, RGBA_1024, bearer, first_of_size
from dispredo_site.testing.tiny_model import build_tiny_artefact


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
        "px_256": first_of_size(256),
        "px_64": first_of_size(64),
    }


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    predictors.clear_cache()
    yield settings.MEDIA_ROOT
    predictors.clear_cache()


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


@pytest.fixture
def default_model(db, settings):
    """The shipped default model (real networks, holdout scores and input guard), registered and active."""
    return register_model_version(settings.DISPREDO_DEFAULT_MODEL_DIR, activate=True)


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


@pytest.fixture
def browser_page(monkeypatch):
    """A page of a fresh headless Chromium at desktop size (browser tests only)."""
    from dispredo_site.testing.browser import chromium_page

    with chromium_page(monkeypatch, {"width": 1280, "height": 900}) as page:
        yield page


@pytest.fixture
def fresh_rate_counts(db):
    """The API's rate counts (api.models.RateCount rows) start from nothing: a transactional test
    would otherwise see the counts earlier tests committed.

    Autouse in the API's tests (api/tests/conftest.py); others ask for it by name."""
    from api.models import RateCount

    RateCount.objects.all().delete()


@pytest.fixture
def token_of(db):
    """``token_of(user)``: a new token key of ``user``."""
    from api.models import ApiToken

    def issue(user, name="test"):
        return ApiToken.issue(user, name)[1]

    return issue


@pytest.fixture
def api(staff, token_of):
    """An API client sending ``staff``'s token."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(**bearer(token_of(staff)))
    return client


@pytest.fixture
def anonymous_api():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def visitor(db):
    """A signed-up user without staff status."""
    return get_user_model().objects.create_user("visitor", password="correct horse battery")


@pytest.fixture
def chart_png():
    """A bar chart's PNG bytes, as a user might pick from the wrong folder (the input guard refuses it)."""
    from dispredo_site.testing.upload_files import chart_png as chart

    return chart()
