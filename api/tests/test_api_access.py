"""Who the API answers: staff with a token or a session; 401 for anonymous requests, 403 with the
pages' message for other accounts; docs for staff only, from local static files."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from rest_framework.test import APIClient

from diagnosis.records.access import STAFF_ONLY_MESSAGE
from diagnosis.records.models import XRay
from dispredo_site.testing.helpers import bearer


@pytest.fixture
def xray(patient):
    return XRay.objects.create(patient=patient, image="xrays/x.png", sha256="0" * 64, width=1, height=1)


def api_urls(patient, xray):
    return [
        reverse("api:token-list"),
        reverse("api:patient-list"),
        reverse("api:patient-detail", args=[patient.pk]),
        reverse("api:xray-list"),
        reverse("api:xray-detail", args=[xray.pk]),
        reverse("api:xray-image", args=[xray.pk]),
        reverse("api:xray-fhir", args=[xray.pk]),
        reverse("api:schema"),
        "/api/no-such-thing/",
    ]


@pytest.mark.django_db
def test_every_endpoint_answers_anonymous_requests_401_with_the_token_scheme(anonymous_api, patient, xray):
    for url in api_urls(patient, xray):
        response = anonymous_api.get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == 'Bearer realm="api"', url
        assert json.loads(response.content) == {"detail": "Authentication credentials were not provided."}, url
    assert anonymous_api.post(reverse("api:patient-list"), {"mrn": "X1", "name": "Eve"}).status_code == 401
    assert patient.__class__.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_token_is_refused(patient):
    client = APIClient()
    client.credentials(**bearer("dsp_not-a-real-key"))
    response = client.get(reverse("api:patient-list"))
    assert response.status_code == 401 and response.json() == {"detail": "Invalid or revoked token."}
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    assert client.get(reverse("api:patient-list")).json() == {
        "detail": "Invalid Authorization header: send 'Bearer <token>'."
    }


@pytest.mark.django_db
def test_accounts_without_staff_status_get_403_with_the_pages_message(client, visitor, token_of, patient, xray):
    page = APIClient()
    page.force_login(visitor)
    assert page.get(reverse("diagnosis:patient_list")).status_code == 403
    with_token = APIClient()
    with_token.credentials(**bearer(token_of(visitor)))  # e.g. a token kept after losing staff status
    for api_client in (page, with_token):
        for url in api_urls(patient, xray):
            response = api_client.get(url)
            assert response.status_code == 403, url
            assert json.loads(response.content) == {"detail": STAFF_ONLY_MESSAGE}, url


@pytest.mark.django_db
def test_a_staff_session_reads_the_api_and_writes_only_with_its_csrf_token(staff):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.get(reverse("api:patient-list")).status_code == 200
    refused = browser.post(reverse("api:patient-list"), {"mrn": "X1", "name": "Eve", "sex": "F"})
    assert refused.status_code == 403 and refused.json()["detail"].startswith("CSRF Failed")
    browser.get(reverse("diagnosis:worklist"))
    created = browser.post(
        reverse("api:patient-list"),
        {"mrn": "X1", "name": "Eve", "sex": "F"},
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert created.status_code == 201


@pytest.mark.django_db
def test_an_unknown_api_url_is_a_json_404(api):
    for url in ("/api/no-such-thing/", "/api/xrays/abc/", "/api/"):
        response = api.get(url)
        assert response.status_code == 404 and response.json() == {"detail": "Not found."}, url


@pytest.mark.django_db
def test_the_docs_are_for_staff_only(client, visitor):
    docs = reverse("api:docs")
    response = client.get(docs)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login") + "?next=")
    client.force_login(visitor)
    assert client.get(docs).status_code == 403


@pytest.mark.django_db
def test_the_docs_load_only_local_files_and_no_inline_script_or_style(staff_client):
    response = staff_client.get(reverse("api:docs"))
    assert response.status_code == 200
    html = response.content.decode()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(references) >= 5
    for reference in references:
        assert reference.startswith("/static/") or reference.startswith("/api/docs/?"), reference
        if reference.startswith("/static/"):
            assert finders.find(reference.removeprefix("/static/")), reference
    assert "http://" not in html and "https://" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # every script is a file
    assert "<style" not in html and "style=" not in html

    script = staff_client.get(reverse("api:docs") + "?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.content.decode()


@pytest.mark.django_db
def test_the_schema_is_served_to_staff_as_openapi_3(api):
    response = api.get(reverse("api:schema"))
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A key from POST /api/tokens/, sent as 'Authorization: Bearer <key>'.",
    }
    upload = schema["paths"]["/api/xrays/"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"201", "400", "401", "403", "429"} <= set(upload["responses"])
