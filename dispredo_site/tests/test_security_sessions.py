"""Finding 5: sessions end when idle, and pages and images with patient data are never stored."""

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from diagnosis.records.models import XRay
from dispredo_site.testing.helpers import start_refusal

REPO = Path(__file__).resolve().parents[2]


def settings_in_subprocess(env, *names):
    """The named settings as a fresh process with ``env`` on top of ours reads them."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def scored_xray(staff_client, patient, tiny_model, sample_images):
    path = sample_images["px_256"]
    staff_client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile(path.name, path.read_bytes())})
    return XRay.objects.get()


def test_the_idle_timeout_is_thirty_minutes_unless_configured(tmp_path):
    env = {"DISPREDO_DATA_DIR": str(tmp_path)}
    assert settings_in_subprocess(env, "SESSION_COOKIE_AGE") == {"SESSION_COOKIE_AGE": 30 * 60}
    env["DISPREDO_SESSION_IDLE_MINUTES"] = "10"
    assert settings_in_subprocess(env, "SESSION_COOKIE_AGE") == {"SESSION_COOKIE_AGE": 10 * 60}


@pytest.mark.django_db
def test_an_idle_session_is_signed_out_and_an_active_one_is_not(staff_client, monkeypatch):
    start = timezone.now()
    clock = {"now": start}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    worklist = reverse("diagnosis:worklist")

    # Active every 29 minutes: still signed in after 58 minutes, longer than the timeout.
    for minutes in (29, 58):
        clock["now"] = start + datetime.timedelta(minutes=minutes)
        assert staff_client.get(worklist).status_code == 200, minutes
    # Then 31 minutes without a request: the session has ended.
    clock["now"] = start + datetime.timedelta(minutes=58 + 31)
    response = staff_client.get(worklist)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_patient_pages_and_images_are_never_stored_by_the_browser(staff_client, scored_xray, patient):
    urls = [
        reverse("diagnosis:worklist"),
        reverse("diagnosis:patient_list"),
        reverse("diagnosis:patient_detail", args=[patient.pk]),
        reverse("diagnosis:xray_detail", args=[scored_xray.pk]),
        reverse("diagnosis:xray_report", args=[scored_xray.pk]),
        reverse("diagnosis:xray_image", args=[scored_xray.pk]),
        reverse("diagnosis:upload"),
    ]
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert response["Cache-Control"] == "no-store", url


@pytest.mark.django_db
def test_admin_pages_are_never_stored_either(admin_client_, patient):
    response = admin_client_.get(reverse("admin:diagnosis_patient_change", args=[patient.pk]))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_static_files_stay_cacheable(staff_client):
    response = staff_client.get("/static/css/dispredo.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_the_idle_timeout_must_be_a_positive_number_of_minutes(tmp_path):
    refused = start_refusal(DISPREDO_DATA_DIR=str(tmp_path), DISPREDO_SESSION_IDLE_MINUTES="0")
    assert "DISPREDO_SESSION_IDLE_MINUTES must be a whole number of at least 1, not '0'." in refused


@pytest.mark.django_db
def test_the_session_cookie_ends_with_the_browser(client, staff):
    client.post(reverse("login"), {"username": "nurse", "password": "correct horse battery"})
    cookie = client.cookies["sessionid"]
    assert cookie.value and cookie["max-age"] == "" and cookie["expires"] == ""
