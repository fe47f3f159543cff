"""Issue 26, finding 3: the lockout is per (user name, address) pair, so one address cannot lock out
everyone behind it; a separate, higher per-address limit throttles. On every sign-in door: the page,
the admin's, and an API token request with a password."""

from datetime import timedelta

import pytest
from axes.models import AccessFailureLog
from django.contrib.auth import get_user_model
from django.db.models import F
from django.test import Client
from django.urls import reverse

from dispredo_site.lockout import API_LOCKOUT_MESSAGE, API_THROTTLE_MESSAGE
from dispredo_site.testing.helpers import start_refusal

PASSWORD = "correct horse battery"
NAT = "10.20.0.1"
DOORS = ["page", "admin", "api"]


def attempt(door, client, username, password, address):
    if door == "api":
        data = {"username": username, "password": password, "name": "RIS"}
        return client.post(reverse("api:token-list"), data, REMOTE_ADDR=address)
    url = reverse("login") if door == "page" else reverse("admin:login")
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def let_in(door, response):
    return response.status_code == (201 if door == "api" else 302)


def refused_for_the_password(door, response):
    return response.status_code == (401 if door == "api" else 200)  # the API: a wrong pair is 401


@pytest.fixture
def users(db, settings):
    # Each attempt checks a password: a quick hasher keeps these tests short (the limits are the subject).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User = get_user_model()
    return [User.objects.create_superuser(name, password=PASSWORD) for name in ("nurse", "reader", "radiographer")]


@pytest.fixture(autouse=True)
def _fresh_api_rate_counts(fresh_rate_counts):
    """The API's own rate limit on token requests starts from nothing for each test."""


@pytest.mark.django_db
@pytest.mark.parametrize("door", DOORS)
def test_five_wrong_passwords_for_nurse_do_not_lock_reader_out_at_the_same_address(users, door):
    for _ in range(4):
        assert refused_for_the_password(door, attempt(door, Client(), "nurse", "wrong guess", NAT))
    fifth = attempt(door, Client(), "nurse", "wrong guess", NAT)
    assert fifth.status_code == 429  # nurse, from here, is locked out
    assert attempt(door, Client(), "nurse", PASSWORD, NAT).status_code == 429

    assert let_in(door, attempt(door, Client(), "reader", PASSWORD, NAT))
    assert let_in(door, attempt(door, Client(), "nurse", PASSWORD, "10.99.0.7"))


@pytest.mark.django_db
@pytest.mark.parametrize("door", DOORS)
def test_the_address_is_throttled_at_its_limit_whatever_the_user_names(users, door, settings):
    settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    for number in range(7):  # seven names, none near its own lockout
        assert refused_for_the_password(door, attempt(door, Client(), f"guess{number}", "wrong", NAT)), number
    eighth = attempt(door, Client(), "guess7", "wrong", NAT)

    assert eighth.status_code == 429
    assert 14 * 60 < int(eighth["Retry-After"]) <= 15 * 60
    refused = attempt(door, Client(), "reader", PASSWORD, NAT)
    assert refused.status_code == 429
    if door == "api":
        assert refused.json() == {"detail": API_THROTTLE_MESSAGE.format(minutes=15)}
    else:
        page = refused.content.decode()
        assert "Too many failed sign-ins from this address" in page
        assert "There were 8 wrong passwords from this\n    computer's address in the last 15 minutes" in page
        assert "Try again in 15 minutes." in page
    # Another address is not held back.
    assert let_in(door, attempt(door, Client(), "reader", PASSWORD, "10.99.0.7"))
    # Nothing refused was counted: the address's failures are the eight passwords checked.
    assert AccessFailureLog.objects.filter(ip_address=NAT).count() == 8


@pytest.mark.django_db
def test_the_throttle_lets_an_attempt_through_for_each_failure_that_leaves_the_window(users, settings):
    settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    for number in range(6):
        attempt("page", Client(), f"guess{number}", "wrong", NAT)
    assert attempt("page", Client(), "reader", PASSWORD, NAT).status_code == 429

    # The oldest failure ages out of the 15 minutes: the address is under its limit by one.
    oldest = AccessFailureLog.objects.filter(ip_address=NAT).order_by("attempt_time").first()
    AccessFailureLog.objects.filter(pk=oldest.pk).update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    assert let_in("page", attempt("page", Client(), "reader", PASSWORD, NAT))
    # One wrong password fills the window again.
    assert attempt("page", Client(), "guess9", "wrong", NAT).status_code == 429
    assert attempt("page", Client(), "radiographer", PASSWORD, NAT).status_code == 429


@pytest.mark.django_db
def test_the_throttle_says_when_to_try_again(users, settings):
    settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    for number in range(6):
        attempt("page", Client(), f"guess{number}", "wrong", NAT)
    # The sixth most recent failure was 11 minutes ago: 4 minutes of the window are left.
    AccessFailureLog.objects.filter(ip_address=NAT).update(attempt_time=F("attempt_time") - timedelta(minutes=11))
    refused = attempt("page", Client(), "reader", PASSWORD, NAT)
    assert refused.status_code == 429
    assert 3 * 60 < int(refused["Retry-After"]) <= 4 * 60
    assert "Try again in 4 minutes." in refused.content.decode()


@pytest.mark.django_db
def test_the_lockout_of_a_pair_says_when_it_ends(users):
    for _ in range(5):
        attempt("api", Client(), "nurse", "wrong", NAT)
    from axes.models import AccessAttempt

    AccessAttempt.objects.filter(username="nurse").update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    refused = attempt("api", Client(), "nurse", PASSWORD, NAT)
    assert refused.status_code == 429
    assert 4 * 60 < int(refused["Retry-After"]) <= 5 * 60
    assert refused.json() == {"detail": API_LOCKOUT_MESSAGE.format(minutes=5)}


@pytest.mark.django_db
def test_throttled_sign_ins_are_logged_without_the_password(users, settings, caplog):
    import logging

    caplog.set_level(logging.WARNING)
    settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    for number in range(6):
        attempt("page", Client(), f"guess{number}", "wrong guess", NAT)
    attempt("page", Client(), "reader", PASSWORD, NAT)
    messages = [record.getMessage() for record in caplog.records]
    assert f"AXES: Throttling sign-ins from {NAT}: 6 failures in 15 minutes." in messages
    assert (
        f"AXES: Refused a sign-in by user 'reader' from {NAT} (/accounts/login/) without checking the password "
        "(address throttled)."
    ) in messages
    assert not any(PASSWORD in message or "wrong guess" in message for message in messages)


def test_the_address_limit_cannot_be_below_the_lockout_limit():
    assert "DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT must be a whole number of at least 5, not '3'." in start_refusal(DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT="3")
