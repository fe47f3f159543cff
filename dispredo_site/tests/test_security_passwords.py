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


# ---- Issue 26, finding 2: passwords built from the user's own names ----------------------------

CONTAINS_USER_NAME = (
    "This password contains the user name, “nurse”. Choose one with nothing of the user’s names or "
    "e-mail address in it."
)
BUILT_FROM_THE_NAME = ["nurse1234567", "nursenursenurse", "nurse-nurse-nurse", "Nurse12345678"]


def change_password(client, user, password):
    return client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]), {"password1": password, "password2": password}
    )


@pytest.mark.django_db
@pytest.mark.parametrize("weak", BUILT_FROM_THE_NAME)
def test_the_admin_refuses_a_password_built_from_the_user_name(admin_client_, staff, weak):
    response = change_password(admin_client_, staff, weak)
    assert response.status_code == 200
    assert CONTAINS_USER_NAME in response.content.decode()
    staff.refresh_from_db()
    assert staff.check_password("correct horse battery")


@pytest.mark.django_db
def test_the_admin_refuses_a_new_user_whose_password_holds_the_name(admin_client_):
    response = admin_client_.post(
        reverse("admin:auth_user_add"),
        {"username": "radiographer", "password1": "Radiographer-2026!", "password2": "Radiographer-2026!", "usable_password": "true"},
    )
    assert response.status_code == 200
    assert "This password contains the user name, “radiographer”." in response.content.decode()
    assert not get_user_model().objects.filter(username="radiographer").exists()


@pytest.mark.django_db
def test_a_user_changing_their_own_password_is_refused_one_built_from_their_name(client, django_user_model):
    user = django_user_model.objects.create_user("nurse", password="correct horse battery", is_staff=True)
    client.force_login(user)
    response = client.post(
        reverse("admin:password_change"),
        {"old_password": "correct horse battery", "new_password1": "nurse-nurse-nurse", "new_password2": "nurse-nurse-nurse"},
    )
    assert response.status_code == 200
    assert CONTAINS_USER_NAME in response.content.decode()
    user.refresh_from_db()
    assert user.check_password("correct horse battery")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, what, part",
    [
        ("lovelace forever 77", "the last name", "lovelace"),
        ("ADA writes programs", "the first name", "ada"),
        ("count of ada-byron.analytical", "the name of the e-mail address", "ada-byron.analytical"),
        ("my byron engine 1843", "the name of the e-mail address", "byron"),
    ],
)
def test_first_and_last_names_and_the_e_mail_name_are_refused_too(django_user_model, password, what, part):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user = django_user_model(
        username="countess", first_name="Ada", last_name="Lovelace", email="ada-byron.analytical@clinic.example"
    )
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user)
    assert refused.value.error_list[0].code == "password_contains_user_name"
    assert f"This password contains {what}, “{part}”." in " ".join(refused.value.messages)


@pytest.mark.django_db
def test_parts_shorter_than_three_characters_are_ignored(django_user_model):
    from django.contrib.auth.password_validation import validate_password

    user = django_user_model(username="li", first_name="Al", last_name="Xu", email="al@clinic.example")
    assert validate_password("almond lighthouse xylophone", user) is None


@pytest.mark.django_db
def test_the_rule_is_in_the_help_text_of_the_password_fields(admin_client_, staff):
    page = admin_client_.get(reverse("admin:auth_user_password_change", args=[staff.pk])).content.decode()
    assert "Your password can’t contain your user name, your first or last name, or the name of your e-mail address." in page


@pytest.mark.django_db
def test_setup_refuses_admin_admin_admin_for_the_admin_account(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPREDO_ADMIN_USERNAME", raising=False)
    monkeypatch.setenv("DISPREDO_ADMIN_PASSWORD", "admin-admin-admin")
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    with pytest.raises(CommandError) as refused:
        call_command("setup", stdout=StringIO())
    assert str(refused.value) == (
        "DISPREDO_ADMIN_PASSWORD is not accepted: This password contains the user name, “admin”. Choose one "
        "with nothing of the user’s names or e-mail address in it. Choose another password, or leave it unset "
        "to have one generated."
    )
    assert not get_user_model().objects.exists()
