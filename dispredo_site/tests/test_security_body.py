"""Finding 4: a request's declared size, and who sends it, are checked before its body is read."""

import pytest
from django.test import Client
from django.urls import reverse

from diagnosis.records.models import Patient

DECLARED_200_MB = str(200 * 1024 * 1024)
MULTIPART = "multipart/form-data; boundary=BoUnDaRy"


class UnreadableBody:
    """A request body that fails the test if anything reads it."""

    def __init__(self):
        self.reads = 0

    def read(self, *args, **kwargs):
        self.reads += 1
        raise AssertionError("the request body was read")

    readline = read

    def __iter__(self):
        self.read()


def post_unread(client, url, length, **extra):
    body = UnreadableBody()
    response = client.generic(
        "POST", url, b"", content_type=MULTIPART,
        **{"CONTENT_LENGTH": length, "CONTENT_TYPE": MULTIPART, "wsgi.input": body}, **extra,
    )
    return response, body


@pytest.fixture
def csrf_client(db):
    """An anonymous client holding a CSRF cookie and checking CSRF, as a browser or script would."""
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    return client


def csrf_header(client):
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


@pytest.mark.django_db
def test_it_refuses_a_200_mb_upload_from_staff_before_reading_it(staff_client, patient):
    response, body = post_unread(staff_client, reverse("diagnosis:upload"), DECLARED_200_MB)
    assert response.status_code == 413
    assert "The file is larger than 40 MB." in response.content.decode()
    assert body.reads == 0


# ---- Issue 26: the 413 is the form's message in the browser, the JSON error in the API ----------


@pytest.mark.django_db
def test_a_413_in_the_browser_is_a_page_with_the_upload_forms_message(staff_client, patient):
    response, body = post_unread(staff_client, reverse("diagnosis:upload"), DECLARED_200_MB)

    assert response.status_code == 413 and body.reads == 0
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert '<p class="message error" role="alert" id="too-large">The file is larger than 40 MB.</p>' in page
    assert f'<a href="{reverse("diagnosis:upload")}">Back to the upload page</a>' in page
    assert "<title>Too large · Dispredo</title>" in page
    # Answered before the middleware that sets them: the page sets the security headers itself.
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_413_in_the_api_is_its_json_error(api, patient):
    response, body = post_unread(api, reverse("api:xray-list"), DECLARED_200_MB)

    assert response.status_code == 413 and body.reads == 0
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The file is larger than 40 MB."}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_413_follows_the_configured_limit(staff_client, settings):
    settings.DISPREDO_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
    response, _ = post_unread(staff_client, reverse("diagnosis:upload"), str(4 * 1024 * 1024))
    assert response.status_code == 413 and "The file is larger than 2 MB." in response.content.decode()


@pytest.mark.django_db
def test_an_oversized_sign_in_form_is_answered_with_a_page_too(csrf_client):
    response, _ = post_unread(csrf_client, reverse("login"), str(1024 * 1024), **csrf_header(csrf_client))
    assert response.status_code == 413 and response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "A sign-in form is never this large." in page
    assert f'<a href="{reverse("login")}">Back to sign in</a>' in page


@pytest.mark.django_db
def test_it_refuses_a_200_mb_anonymous_post_before_reading_it(csrf_client):
    response, body = post_unread(csrf_client, reverse("diagnosis:upload"), DECLARED_200_MB, **csrf_header(csrf_client))
    assert response.status_code == 413 and body.reads == 0


@pytest.mark.django_db
def test_an_anonymous_post_is_sent_to_sign_in_without_reading_the_body(csrf_client, patient):
    for url in (reverse("diagnosis:upload"), reverse("diagnosis:patient_delete", args=[patient.pk])):
        response, body = post_unread(csrf_client, url, "2048", **csrf_header(csrf_client))
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url
        assert body.reads == 0, url
    assert Patient.objects.filter(pk=patient.pk).exists()


@pytest.mark.django_db
def test_the_sign_in_form_accepts_only_a_small_body(csrf_client):
    for url in (reverse("login"), reverse("admin:login")):
        response, body = post_unread(csrf_client, url, str(1024 * 1024), **csrf_header(csrf_client))
        assert response.status_code == 413 and body.reads == 0, url


@pytest.mark.django_db
def test_an_upload_at_the_limit_is_still_read_and_judged_by_the_form(staff_client, patient, settings):
    # Just over the byte limit but inside the margin for the form's other fields: the form answers.
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DISPREDO_MAX_UPLOAD_BYTES = 1024 * 1024
    big = SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * (1024 * 1024 + 100))
    response = staff_client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": big})
    assert response.status_code == 200
    assert "The file is larger than 1 MB." in response.content.decode()
