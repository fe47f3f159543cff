"""Nothing assumes one process: what one server changes, another sees through the database.

The active model is looked up per upload (a version activated elsewhere scores this process's next
upload, although it still holds the old predictor), sessions are database rows, and the API's rate
counts are rows of a table (api.models.RateCount).
"""

import json
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.urls import reverse

from diagnosis.gate.activation import activate
from diagnosis.lifecycle import predictors as inference
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import XRay
from dispredo_site.testing.helpers import REPO, bearer, upload_file
from dispredo_site.testing.tiny_model import build_tiny_artefact

ACTIVATE_ELSEWHERE = """
import json, sys
import dispredo_site.settings as site
site.DATABASES = {"default": json.loads(sys.argv[1])}
import django
django.setup()
from django.core.management import call_command
call_command("activate", version_name=sys.argv[2], force=True, verbosity=0)
"""


def _activate_in_a_thread(name):
    """Another connection (a thread has its own) commits the activation."""
    failures = []

    def run():
        try:
            activate(ModelVersion.objects.get(name=name), force=True)
        except Exception as exc:  # reported in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not failures and not thread.is_alive()


def _activate_in_another_process(name, tmp_path):
    """``manage.py activate`` in a separate Python process on the same database."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("the SQLite test database lives in this process's memory, out of another process's reach")
    database = {key: value for key, value in connection.settings_dict.items() if key != "TEST"}
    env = {"DJANGO_SETTINGS_MODULE": "dispredo_site.settings", "DISPREDO_DATA_DIR": str(tmp_path / "other"),
           "DISPREDO_SECRET_KEY": "another-server", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", ACTIVATE_ELSEWHERE, json.dumps(database, default=str), name],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("elsewhere", ["another connection", "another process"])
def test_a_version_activated_elsewhere_scores_the_next_upload_here(staff_client, patient, sample_images, tmp_path, elsewhere):
    build_tiny_artefact(tmp_path / "first", name="first-model")
    build_tiny_artefact(tmp_path / "second", name="second-model", seed=1)
    first = register_model_version(tmp_path / "first", activate=True)
    second = register_model_version(tmp_path / "second")

    upload_file(staff_client, sample_images["px_64"], patient)
    assert {p.model_version_id for p in XRay.objects.get().predictions.all()} == {first.pk}
    loaded = (first.pk, str(first.artefact_path))
    assert loaded in inference._loaded  # this process holds the first model's predictor

    if elsewhere == "another connection":
        _activate_in_a_thread("second-model")
    else:
        _activate_in_another_process("second-model", tmp_path)

    upload_file(staff_client, sample_images["px_256"], patient)
    latest = XRay.objects.order_by("-pk").first()
    assert {p.model_version_id for p in latest.predictions.all()} == {second.pk}
    assert latest.predictions.count() == 14
    # Nothing told this process: it still holds the first predictor, and read the active version from the database.
    assert loaded in inference._loaded
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]


@pytest.mark.django_db
def test_a_signed_in_session_is_a_database_row(staff_client, patient):
    assert django_settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    assert staff_client.get(reverse("diagnosis:worklist")).status_code == 200
    assert Session.objects.count() == 1
    Session.objects.all().delete()  # as if signed out on another server
    response = staff_client.get(reverse("diagnosis:worklist"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_the_api_rate_counts_are_kept_in_the_database(settings, staff, token_of):  # noqa: F811
    from rest_framework.test import APIClient

    from api.models import RateCount

    settings.DISPREDO_API_REQUEST_RATE = "2/min"
    api = APIClient()
    api.credentials(**bearer(token_of(staff)))
    patients = reverse("api:patient-list")
    assert [api.get(patients).status_code for _ in range(3)] == [200, 200, 429]
    assert RateCount.objects.get(key=f"throttle_requests_user-{staff.pk}").count == 3
    with connection.cursor() as cursor:  # another server's view of the count is this table
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(RateCount._meta.db_table)}")
    assert api.get(patients).status_code == 200
