"""API tokens: created with the password or from a session, listed without their keys, revoked by
their holder or an administrator; a revoked token is refused."""

from urllib.parse import urlencode

import pytest
from django.contrib.auth.forms import AuthenticationForm
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from api.models import ApiToken, digest
from diagnosis.records.access import STAFF_ONLY_MESSAGE
from dispredo_site.lockout import API_LOCKOUT_MESSAGE
from dispredo_site.testing.helpers import bearer

TOKENS = reverse("api:token-list")
PATIENTS = reverse("api:patient-list")
PASSWORD = "correct horse battery"


def token_url(token):
    return reverse("api:token-detail", args=[token.pk])


@pytest.mark.django_db
def test_a_token_is_created_with_the_password_and_opens_the_api(anonymous_api, staff):
    # As curl -d sends it (the README's example).
    form = urlencode({"username": "nurse", "password": PASSWORD, "name": "RIS"})
    response = anonymous_api.post(TOKENS, form, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 201
    body = response.json()
    token = ApiToken.objects.get()
    assert (body["id"], body["name"], body["user"], token.user) == (token.pk, "RIS", "nurse", staff)
    assert body["key"].startswith("dsp_") and body["key_start"] == body["key"][:12]
    # Only the digest is stored, never the key itself.
    assert token.key_digest == digest(body["key"]) and body["key"] not in str(ApiToken.objects.values().get())
    listed = APIClient().get(PATIENTS, HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert listed.status_code == 200
    assert APIClient().get(PATIENTS, HTTP_AUTHORIZATION=f"Token {body['key']}").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.django_db
def test_it_refuses_a_wrong_password_with_the_sign_in_pages_message(anonymous_api, staff):
    response = anonymous_api.post(TOKENS, {"username": "nurse", "password": "wrong", "name": "RIS"})
    assert response.status_code == 401  # a wrong pair does not sign anyone in: not bad input
    expected = AuthenticationForm.error_messages["invalid_login"] % {"username": "username"}
    assert response.json() == {"detail": expected}
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_locked_out_sign_in_with_the_apis_json_error(anonymous_api, staff):
    for _ in range(4):
        assert anonymous_api.post(TOKENS, {"username": "nurse", "password": "wrong", "name": "RIS"}).status_code == 401
    fifth = anonymous_api.post(TOKENS, {"username": "nurse", "password": "wrong", "name": "RIS"})
    then = anonymous_api.post(TOKENS, {"username": "nurse", "password": PASSWORD, "name": "RIS"})
    for response in (fifth, then):
        assert response.status_code == 429 and response["Content-Type"] == "application/json"
        assert response.json() == {"detail": API_LOCKOUT_MESSAGE.format(minutes=15)}
        assert response["Retry-After"] == str(15 * 60)
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_token_to_an_account_without_staff_status(anonymous_api, visitor):
    response = anonymous_api.post(TOKENS, {"username": "visitor", "password": PASSWORD, "name": "RIS"})
    assert response.status_code == 403
    assert response.json() == {"detail": STAFF_ONLY_MESSAGE}
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_a_token_cannot_mint_another_without_the_password(api):
    response = api.post(TOKENS, {"name": "second"})
    assert response.status_code == 400
    assert response.json() == {"username": ["This field is required."], "password": ["This field is required."]}
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_a_token_needs_a_name(anonymous_api, staff):
    response = anonymous_api.post(TOKENS, {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}


@pytest.mark.django_db
def test_a_signed_in_browser_creates_a_token_with_its_csrf_token(staff):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff)
    refused = browser.post(TOKENS, {"name": "laptop"})
    assert refused.status_code == 403 and refused.json()["detail"].startswith("CSRF Failed")

    browser.get(reverse("diagnosis:worklist"))  # sets the CSRF cookie, as the pages do
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(TOKENS, {"name": "laptop"}, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201
    assert ApiToken.objects.get().user == staff


@pytest.mark.django_db
def test_a_user_lists_their_own_tokens_without_keys(api, staff, visitor, token_of):
    token_of(visitor, "not mine")
    response = api.get(TOKENS)
    assert response.status_code == 200
    [mine] = response.json()["results"]
    assert mine["user"] == "nurse" and "key" not in mine


@pytest.mark.django_db
def test_a_revoked_token_is_refused_with_401(api, staff):
    token = ApiToken.objects.get(user=staff)
    assert api.delete(token_url(token)).status_code == 204
    assert not ApiToken.objects.exists()

    response = api.get(PATIENTS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token."}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db
def test_a_user_cannot_revoke_another_users_token_but_an_administrator_can(api, django_user_model, token_of):
    colleague = django_user_model.objects.create_user("colleague", password=PASSWORD, is_staff=True)
    token_of(colleague, "theirs")
    theirs = ApiToken.objects.get(user=colleague)

    assert api.delete(token_url(theirs)).status_code == 404
    assert ApiToken.objects.filter(pk=theirs.pk).exists()

    admin = APIClient()
    admin.credentials(**bearer(token_of(django_user_model.objects.create_superuser("boss", password=PASSWORD))))
    assert admin.get(TOKENS).json()["count"] == 3
    assert admin.delete(token_url(theirs)).status_code == 204
    assert not ApiToken.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_an_administrator_revokes_a_token_in_the_admin(admin_client_, staff, token_of):
    key = token_of(staff, "RIS")
    token = ApiToken.objects.get()
    listing = admin_client_.get(reverse("admin:api_apitoken_changelist"))
    assert listing.status_code == 200 and token.key_start in listing.content.decode()
    assert key not in listing.content.decode()

    admin_client_.post(reverse("admin:api_apitoken_delete", args=[token.pk]), {"post": "yes"})

    assert not ApiToken.objects.exists()
    assert APIClient().get(PATIENTS, **bearer(key)).status_code == 401


@pytest.mark.django_db
def test_the_token_of_an_account_made_inactive_is_refused(api, staff):
    staff.is_active = False
    staff.save()
    assert api.get(PATIENTS).status_code == 401


@pytest.mark.django_db
def test_the_schema_says_a_token_request_needs_the_user_name_and_password(anonymous_api, staff):
    response = anonymous_api.post(TOKENS, {"name": "RIS"})
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert sorted(schema["components"]["schemas"]["TokenRequestRequest"]["required"]) == ["name", "password", "username"]
