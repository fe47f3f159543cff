"""/healthz for a load balancer: 200 when the database answers, the active model loads and the media
storage takes a write; 503 with a short reason per failed check otherwise. No sign-in, no session."""

from contextlib import contextmanager

import pytest
from django.contrib.sessions.models import Session
from django.db import connections
from django.db.utils import load_backend
from django.urls import reverse

from diagnosis.lifecycle.models import ModelVersion
from dispredo_site.observability import health
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.ports import free_port

HEALTHZ = "/healthz"
ALL_OK = {"database": "ok", "model": "ok", "media": "ok"}


@contextmanager
def unreachable_database(tmp_path):
    """The default connection swapped for one to a database that is not there: a SQLite file in a
    removed folder, or a PostgreSQL port nothing listens on."""
    original = connections["default"]
    settings_dict = dict(original.settings_dict)
    if original.vendor == "sqlite":
        gone = tmp_path / "removed"
        gone.mkdir()
        gone.rmdir()
        settings_dict.update(NAME=str(gone / "dispredo.sqlite3"), OPTIONS={})
    else:
        settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    dead = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "default")
    connections["default"] = dead
    try:
        yield
    finally:
        connections["default"] = original
        dead.close()


@pytest.mark.django_db
def test_it_answers_200_without_sign_in_when_everything_works(client, tiny_model, private_media):
    response = client.get(HEALTHZ)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": ALL_OK}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies  # no session, no CSRF cookie
    assert Session.objects.count() == 0
    assert stored_files(private_media) == []  # the probe file is deleted again


@pytest.mark.django_db
def test_it_answers_head_and_refuses_other_methods(client, tiny_model):
    assert client.head(HEALTHZ).status_code == 200
    assert client.generic("PUT", HEALTHZ, HTTP_AUTHORIZATION="Bearer x").status_code == 405


@pytest.mark.django_db
def test_it_answers_503_when_the_database_is_gone(client, tiny_model, tmp_path):
    with unreachable_database(tmp_path):
        response = client.get(HEALTHZ)

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": health.DATABASE_DOWN, "model": health.MODEL_NOT_CHECKED, "media": "ok"},
    }
    assert response["Cache-Control"] == "no-store"
    assert client.get(HEALTHZ).status_code == 200  # back once the database is


@pytest.mark.django_db
def test_it_answers_503_without_an_active_model_version(client, tiny_model):
    ModelVersion.objects.update(is_active=False)

    response = client.get(HEALTHZ)

    assert response.status_code == 503
    assert response.json()["checks"] == {**ALL_OK, "model": "no active model version"}


@pytest.mark.django_db
def test_it_answers_503_when_the_active_model_cannot_be_loaded(client, tiny_model, tmp_path):
    (tmp_path / "tiny" / "model.onnx").write_bytes(b"not an ONNX graph")

    response = client.get(HEALTHZ)

    assert response.status_code == 503
    assert response.json()["checks"] == {**ALL_OK, "model": health.MODEL_NOT_LOADED}


@pytest.mark.django_db
def test_it_answers_503_when_the_media_folder_is_not_writable(client, tiny_model, settings, tmp_path):
    # A regular file where a folder should be: unwritable even for root, unlike a chmod.
    (tmp_path / "blocker").write_text("")
    settings.MEDIA_ROOT = tmp_path / "blocker" / "media"

    response = client.get(HEALTHZ)

    assert response.status_code == 503
    assert response.json()["checks"] == {**ALL_OK, "media": health.MEDIA_NOT_WRITABLE}


@pytest.mark.django_db
def test_it_is_not_redirected_to_https_nor_sent_to_sign_in(client, tiny_model, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client.get(HEALTHZ)

    assert response.status_code == 200


@pytest.mark.django_db
def test_it_shows_no_patient_data_to_a_signed_in_user_either(staff_client, patient, tiny_model):
    response = staff_client.get(HEALTHZ)

    assert response.status_code == 200
    assert patient.name.encode() not in response.content and patient.mrn.encode() not in response.content
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_sign_in_lockout_of_the_address_does_not_touch_it(client, staff, tiny_model, settings):
    settings.AXES_FAILURE_LIMIT = 1
    client.post(reverse("login"), {"username": "nurse", "password": "wrong guess"})
    assert client.post(reverse("login"), {"username": "nurse", "password": "wrong guess"}).status_code == 429

    assert client.get(HEALTHZ).status_code == 200
    assert client.get("/metrics").status_code == 200  # from loopback, like the locked-out sign-ins
