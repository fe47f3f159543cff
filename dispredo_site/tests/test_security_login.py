"""Finding 2 (issue 17): sign-in is locked out per user name and address, and failed sign-ins are
logged. Issue 26's per-address throttle and the other doors: test_security_sign_in_limits.py."""

import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

PASSWORD = "correct horse battery"


def sign_in(client, username, password, address, url=None):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client):
    return "_auth_user_id" in client.session


@pytest.fixture
def users(db, settings):
    # Each attempt checks a password: a quick hasher keeps these tests short (the limits are the subject).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User = get_user_model()
    return {
        "nurse": User.objects.create_user("nurse", password=PASSWORD, is_staff=True),
        "radiographer": User.objects.create_user("radiographer", password=PASSWORD, is_staff=True),
        "boss": User.objects.create_superuser("boss", password=PASSWORD),
    }


def test_the_limits_are_five_failures_and_fifteen_minutes_by_default():
    from datetime import timedelta

    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT == 25
    assert settings.DISPREDO_LOGIN_ADDRESS_WINDOW == timedelta(minutes=15)


@pytest.mark.django_db
def test_it_refuses_the_right_password_after_five_wrong_ones(users):
    client = Client()
    for _ in range(5):
        response = sign_in(client, "nurse", "wrong guess", "10.0.0.1")
    assert response.status_code == 429
    response = sign_in(client, "nurse", PASSWORD, "10.0.0.1")
    assert response.status_code == 429
    assert not signed_in(client)
    page = response.content.decode()
    assert "Too many failed sign-ins" in page and "paused for 15 minutes" in page
    assert "Try again in 15 minutes." in page and response["Retry-After"] == str(15 * 60)


@pytest.mark.django_db
def test_a_user_locked_out_at_one_address_still_signs_in_from_another(users):
    attacker = Client()
    for _ in range(5):
        sign_in(attacker, "nurse", "wrong guess", "10.0.0.1")
    elsewhere = Client()
    response = sign_in(elsewhere, "nurse", PASSWORD, "10.0.0.2")
    assert response.status_code == 302 and signed_in(elsewhere)


@pytest.mark.django_db
def test_other_users_at_other_addresses_are_unaffected(users):
    attacker = Client()
    for _ in range(5):
        sign_in(attacker, "nurse", "wrong guess", "10.0.0.1")
    colleague = Client()
    response = sign_in(colleague, "radiographer", PASSWORD, "10.0.0.2")
    assert response.status_code == 302 and response["Location"] == reverse("diagnosis:worklist")
    assert signed_in(colleague)


@pytest.mark.django_db
def test_an_attempt_refused_during_the_pause_checks_no_password_and_is_not_counted(users):
    from axes.models import AccessAttempt, AccessFailureLog

    client = Client()
    for _ in range(5):
        sign_in(client, "nurse", "wrong guess", "10.0.0.1")
    for password in ("wrong guess", PASSWORD, "another guess"):
        assert sign_in(client, "nurse", password, "10.0.0.1").status_code == 429
    assert AccessAttempt.objects.get(username="nurse").failures_since_start == 5
    assert AccessFailureLog.objects.filter(ip_address="10.0.0.1").count() == 5


@pytest.mark.django_db
def test_fewer_failures_than_the_limit_still_let_the_right_password_in(users):
    client = Client()
    for _ in range(4):
        assert sign_in(client, "nurse", "wrong guess", "10.0.0.1").status_code == 200
    assert sign_in(client, "nurse", PASSWORD, "10.0.0.1").status_code == 302
    assert signed_in(client)


@pytest.mark.django_db
def test_the_admin_sign_in_is_locked_out_too(users):
    client = Client()
    url = reverse("admin:login")
    for _ in range(5):
        sign_in(client, "boss", "wrong guess", "10.0.0.3", url=url)
    response = sign_in(client, "boss", PASSWORD, "10.0.0.3", url=url)
    assert response.status_code == 429 and not signed_in(client)


@pytest.mark.django_db
def test_failed_sign_ins_are_logged_with_user_name_and_address(users, caplog):
    caplog.set_level(logging.WARNING)
    sign_in(Client(), "nurse", "wrong guess", "10.0.0.7")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("login failure" in m and "'nurse'" in m and "10.0.0.7" in m for m in warnings), warnings
    assert not any("wrong guess" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_failed_sign_ins_and_lockouts_are_recorded_and_shown_in_the_admin(users):
    from axes.models import AccessAttempt, AccessFailureLog

    for _ in range(5):
        sign_in(Client(), "nurse", "wrong guess", "10.0.0.1")
    attempt = AccessAttempt.objects.get(username="nurse")
    assert (attempt.ip_address, attempt.failures_since_start) == ("10.0.0.1", 5)
    assert "wrong guess" not in attempt.post_data
    log = AccessFailureLog.objects.filter(username="nurse", ip_address="10.0.0.1")
    assert log.count() == 5 and log.filter(locked_out=True).exists()

    admin = Client()
    admin.force_login(users["boss"])
    for model in ("accessattempt", "accessfailurelog"):
        page = admin.get(reverse(f"admin:axes_{model}_changelist"))
        assert page.status_code == 200 and "nurse" in page.content.decode(), model


@pytest.mark.django_db
def test_behind_the_proxy_each_client_is_counted_by_the_address_the_proxy_saw(users, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = "127.0.0.1"
    attacker = Client()
    for _ in range(5):
        # A forged first entry does not help: the proxy appends the address it saw last.
        attacker.post(reverse("login"), {"username": f"guess{_}", "password": "x"}, REMOTE_ADDR=proxy,
                      HTTP_X_FORWARDED_FOR=f"10.9.9.{_}, 192.168.5.66", HTTP_X_FORWARDED_PROTO="https")
    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.168.5.66"}
    colleague = Client()
    response = colleague.post(reverse("login"), {"username": "radiographer", "password": PASSWORD}, REMOTE_ADDR=proxy,
                              HTTP_X_FORWARDED_FOR="192.168.5.20", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 302 and signed_in(colleague)
