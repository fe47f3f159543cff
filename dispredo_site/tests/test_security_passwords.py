"""Finding 2: weak passwords are refused, in the admin and for DISPREDO_ADMIN_PASSWORD."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

TOO_SHORT = "This password is too short. It must contain at least 12 characters."
TOO_COMMON = "This password is too common."


@pytest.mark.django_db
@pytest.mark.parametrize("weak", ["dispredo", "clinic2024"])
def test_the_admin_refuses_a_short_password(admin_client_, staff, weak):
    url = reverse("admin:auth_user_password_change", args=[staff.pk])
    response = admin_client_.post(url, {"password1": weak, "password2": weak})
    assert response.status_code == 200
    assert TOO_SHORT in response.content.decode()
    staff.refresh_from_db()
    assert staff.check_password("correct horse battery")


@pytest.mark.django_db
def test_the_admin_refuses_a_common_password_of_twelve_characters(admin_client_, staff):
    url = reverse("admin:auth_user_password_change", args=[staff.pk])
    response = admin_client_.post(url, {"password1": "password1234", "password2": "password1234"})
    assert TOO_COMMON in response.content.decode()
    staff.refresh_from_db()
    assert staff.check_password("correct horse battery")


@pytest.mark.django_db
def test_the_admin_accepts_a_long_uncommon_password(admin_client_, staff):
    url = reverse("admin:auth_user_password_change", args=[staff.pk])
    response = admin_client_.post(url, {"password1": "mauve otter lantern", "password2": "mauve otter lantern"})
    assert response.status_code == 302
    staff.refresh_from_db()
    assert staff.check_password("mauve otter lantern")


@pytest.mark.django_db
@pytest.mark.parametrize("weak", ["dispredo", "clinic2024"])
def test_setup_refuses_a_weak_admin_password_from_the_environment(settings, tmp_path, monkeypatch, weak):
    monkeypatch.setenv("DISPREDO_ADMIN_PASSWORD", weak)
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    with pytest.raises(CommandError) as refused:
        call_command("setup", stdout=StringIO())
    message = str(refused.value)
    assert message.startswith("DISPREDO_ADMIN_PASSWORD is not accepted: ")
    assert TOO_SHORT in message and "or leave it unset to have one generated" in message
    assert weak not in message
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_setup_refuses_an_admin_password_like_the_user_name(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DISPREDO_ADMIN_USERNAME", "radiology-admin")
    monkeypatch.setenv("DISPREDO_ADMIN_PASSWORD", "radiology-admin1")
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    with pytest.raises(CommandError, match="The password is too similar to the username."):
        call_command("setup", stdout=StringIO())
    assert not get_user_model().objects.exists()
