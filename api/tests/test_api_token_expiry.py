"""Issue 26: API tokens expire, DISPREDO_API_TOKEN_DAYS (90 by default) after they are created. The
holder sees when (on creation, in the list, in the admin); an expired token is refused with 401 and
a message that says it expired."""

from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from api.models import ApiToken
from dispredo_site.testing.helpers import bearer, start_refusal
from dispredo_site.testing.migrations import latest as leaf_nodes
from dispredo_site.testing.migrations import migrate

TOKENS = reverse("api:token-list")
PATIENTS = reverse("api:patient-list")
PASSWORD = "correct horse battery"


def parsed(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.django_db
def test_a_new_token_expires_in_90_days_and_says_so_when_created(anonymous_api, staff):
    response = anonymous_api.post(TOKENS, {"username": "nurse", "password": PASSWORD, "name": "RIS"})

    assert response.status_code == 201
    body = response.json()
    token = ApiToken.objects.get()
    assert token.expires_at - token.created_at == timedelta(days=90)
    assert parsed(body["expires_at"]) == token.expires_at
    assert parsed(body["expires_at"]) - parsed(body["created_at"]) == timedelta(days=90)


@pytest.mark.django_db
def test_the_holder_sees_when_each_token_expires_in_the_list(api, staff):
    [listed] = api.get(TOKENS).json()["results"]
    assert parsed(listed["expires_at"]) == ApiToken.objects.get(user=staff).expires_at


@pytest.mark.django_db
def test_the_lifetime_comes_from_the_setting(anonymous_api, staff, settings):
    settings.DISPREDO_API_TOKEN_DAYS = 7
    body = anonymous_api.post(TOKENS, {"username": "nurse", "password": PASSWORD, "name": "RIS"}).json()
    assert parsed(body["expires_at"]) - parsed(body["created_at"]) == timedelta(days=7)


@pytest.mark.django_db
def test_an_expired_token_is_refused_with_401_saying_it_expired(staff, token_of):
    key = token_of(staff)
    ApiToken.objects.update(expires_at=datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc))

    response = APIClient().get(PATIENTS, **bearer(key))

    assert response.status_code == 401
    assert response.json() == {
        "detail": "This token expired on 2026-03-04 05:06 UTC. Create a new one (POST /api/tokens/) and revoke this one."
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert ApiToken.objects.get().last_used_at is None


@pytest.mark.django_db
def test_a_token_works_until_the_moment_it_expires(staff, token_of):
    key = token_of(staff)
    ApiToken.objects.update(expires_at=django_timezone.now() + timedelta(seconds=30))
    assert APIClient().get(PATIENTS, **bearer(key)).status_code == 200
    ApiToken.objects.update(expires_at=django_timezone.now())
    assert APIClient().get(PATIENTS, **bearer(key)).status_code == 401


@pytest.mark.django_db
def test_the_admin_lists_when_each_token_expires(admin_client_, staff, token_of):
    token_of(staff, "RIS")
    ApiToken.objects.update(expires_at=datetime(2027, 2, 28, 12, 0, tzinfo=timezone.utc))
    listing = admin_client_.get(reverse("admin:api_apitoken_changelist")).content.decode()
    assert "Expires at" in listing and "2027-02-28 12:00" in listing


def test_a_bad_token_lifetime_in_the_environment_stops_the_start_with_a_clear_message():
    assert "DISPREDO_API_TOKEN_DAYS must be a whole number from 1 to 3650, not '0'." in start_refusal(DISPREDO_API_TOKEN_DAYS="0")


@pytest.mark.django_db(transaction=True)
def test_tokens_issued_before_the_upgrade_expire_90_days_after_their_creation():
    latest = leaf_nodes()
    created = datetime(2026, 10, 1, 8, 30, tzinfo=timezone.utc)
    try:
        old = migrate([("api", "0001_initial")])
        user = old.get_model("auth", "User").objects.create(username="ris-gateway", is_staff=True)
        old.get_model("api", "ApiToken").objects.create(
            user=user, name="RIS", key_digest="0" * 64, key_start="dsp_00000000", created_at=created
        )
        new = migrate([("api", "0002_apitoken_expires_at")])
        token = new.get_model("api", "ApiToken").objects.get()
        assert token.expires_at == datetime(2026, 12, 30, 8, 30, tzinfo=timezone.utc)
    finally:
        migrate(latest)
