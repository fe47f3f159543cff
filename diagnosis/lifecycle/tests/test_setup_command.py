from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from diagnosis.lifecycle.models import ModelVersion
from dispredo_site.testing.tiny_model import build_tiny_artefact


@pytest.mark.django_db
def test_setup_creates_the_first_staff_account_once(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPREDO_ADMIN_PASSWORD", raising=False)
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    out = StringIO()
    call_command("setup", stdout=out)
    admin = get_user_model().objects.get()
    password = out.getvalue().split("password: ")[1].split()[0]
    assert admin.username == "admin" and admin.is_staff and admin.is_superuser
    assert admin.check_password(password) and len(password) >= 12
    assert "No default model" in out.getvalue()

    again = StringIO()
    call_command("setup", stdout=again)
    assert get_user_model().objects.count() == 1
    assert "password" not in again.getvalue()


@pytest.mark.django_db
def test_setup_uses_the_password_from_the_environment(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DISPREDO_ADMIN_PASSWORD", "a long local passphrase")
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    out = StringIO()
    call_command("setup", stdout=out)
    assert get_user_model().objects.get().check_password("a long local passphrase")
    assert "a long local passphrase" not in out.getvalue()


@pytest.mark.django_db
def test_setup_installs_and_activates_the_default_model(settings, tmp_path):
    build_tiny_artefact(tmp_path / "default", name="default-v1")
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "default"
    call_command("setup", stdout=StringIO())
    call_command("setup", stdout=StringIO())
    version = ModelVersion.objects.get()
    assert version.name == "default-v1" and version.is_active
    assert version.thresholds == {name: 0.5 for name in version.thresholds}


@pytest.mark.django_db
def test_the_shipped_default_model_loads(settings):
    from dispredo_core.artefact import read_metadata

    if not (settings.DISPREDO_DEFAULT_MODEL_DIR / "metadata.json").exists():
        pytest.skip("models/default has not been trained yet")
    metadata = read_metadata(settings.DISPREDO_DEFAULT_MODEL_DIR)
    call_command("setup", stdout=StringIO())
    version = ModelVersion.objects.get(is_active=True)
    assert version.name == metadata["name"]
    assert version.thresholds == metadata["thresholds"]
    assert version.evaluation["test"]["split"] == "test"
    assert version.evaluation["test"]["used_for_model_selection"] is False
