"""/metrics in Prometheus's format: only for the token's bearer or from this machine, counters that
follow uploads and refusals, no patient data; several gunicorn workers add up (multiprocess mode)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from api.models import ApiToken
from dispredo_site.testing.helpers import upload_file

REPO = Path(__file__).resolve().parents[2]
START = REPO / "bin" / "start"
METRICS = "/metrics"
TOKEN = "metrics-token-for-the-tests-0123456789"
ELSEWHERE = {"REMOTE_ADDR": "10.0.0.7"}
UPLOAD = "diagnosis:upload"


def scrape(client, **extra):
    """{(sample name, ((label, value), ...)): value} from /metrics."""
    response = client.get(METRICS, **extra)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def token(settings):
    settings.DISPREDO_METRICS_TOKEN = TOKEN
    return TOKEN


def test_it_refuses_a_request_from_another_machine_without_a_token(client, token):
    response = client.get(METRICS, **ELSEWHERE)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"dispredo_" not in response.content


@pytest.mark.parametrize("header", ["Bearer wrong-token-of-the-same-length-0123", "Basic bm9ib2R5OnNlY3JldA==", "Bearer"])
def test_it_refuses_a_wrong_token_even_from_this_machine(client, token, header):
    assert client.get(METRICS, HTTP_AUTHORIZATION=header, **ELSEWHERE).status_code == 403
    assert client.get(METRICS, HTTP_AUTHORIZATION=header).status_code == 403


def test_a_bearer_token_is_refused_while_none_is_configured(client, settings):
    settings.DISPREDO_METRICS_TOKEN = ""
    assert client.get(METRICS, HTTP_AUTHORIZATION="Bearer ", **ELSEWHERE).status_code == 403


@pytest.mark.django_db
def test_it_serves_the_metrics_with_the_token_from_anywhere(client, token, tiny_model):
    response = client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **ELSEWHERE)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    samples = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **ELSEWHERE)
    assert value(samples, "dispredo_active_model_info", version=tiny_model.name) == 1


@pytest.mark.django_db
def test_it_serves_this_machine_without_a_token(client, tiny_model):
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get(METRICS, REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize("extra", [{"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, {"HTTP_X_REAL_IP": "203.0.113.9"}])
def test_a_request_through_a_proxy_needs_the_token_though_it_comes_from_loopback(client, token, extra):
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1", **extra).status_code == 401


@pytest.mark.django_db
def test_behind_the_proxy_every_request_needs_the_token(client, token, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_counters_follow_a_stored_and_a_refused_upload(staff_client, patient, tiny_model, sample_images):
    before = scrape(staff_client)

    stored = upload_file(staff_client, sample_images["px_256"], patient)
    refused = staff_client.post(
        reverse(UPLOAD), {"patient": patient.pk, "image": SimpleUploadedFile("scan.png", b"not an image\n")}
    )

    assert stored.status_code == 200 and refused.status_code == 200
    after = scrape(staff_client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dispredo_uploads_total", outcome="stored") == 1
    assert moved("dispredo_uploads_total", outcome="refused") == 1
    assert moved("dispredo_upload_refusals_total", reason="invalid_image") == 1
    assert moved("dispredo_scoring_duration_seconds_count") == 1
    assert moved("dispredo_http_request_duration_seconds_count", view=UPLOAD, method="POST", status="3xx") == 1
    assert moved("dispredo_http_request_duration_seconds_count", view=UPLOAD, method="POST", status="2xx") == 1
    detail = {"view": "diagnosis:xray_detail", "method": "GET", "status": "2xx"}
    assert moved("dispredo_http_request_duration_seconds_count", **detail) == 1


@pytest.mark.django_db
def test_an_upload_over_the_size_limit_counts_as_refused(staff_client, settings):
    before = scrape(staff_client)
    too_large = settings.DISPREDO_MAX_UPLOAD_BYTES * 2

    response = staff_client.post(reverse(UPLOAD), {}, CONTENT_LENGTH=str(too_large))

    assert response.status_code == 413
    after = scrape(staff_client)
    reason = ("dispredo_upload_refusals_total", (("reason", "request_too_large"),))
    assert after[reason] - before.get(reason, 0) == 1


@pytest.mark.django_db
def test_the_guard_refusal_is_counted_by_its_code(staff_client, patient, default_model, chart_png):  # noqa: F811
    before = scrape(staff_client)
    response = staff_client.post(
        reverse(UPLOAD), {"patient": patient.pk, "image": SimpleUploadedFile("chart.png", chart_png)}
    )

    assert response.status_code == 200 and response.context["form"].offer_override
    after = scrape(staff_client)
    reason = ("dispredo_upload_refusals_total", (("reason", "not_chest_xray"),))
    assert after[reason] - before.get(reason, 0) == 1


@pytest.mark.django_db
def test_the_metrics_hold_no_patient_data_after_uploads_and_searches(staff_client, staff, tiny_model, sample_images):
    name, mrn, file_name = "Zebedee Quinton-Fairweather", "ZQF-778121", "zebedee_quinton_chest.png"
    image = sample_images["px_64"].read_bytes()
    stored = staff_client.post(
        reverse(UPLOAD), {"new_mrn": mrn, "new_name": name, "image": SimpleUploadedFile(file_name, image)}
    )
    refused = staff_client.post(reverse(UPLOAD), {"new_mrn": mrn, "image": SimpleUploadedFile(file_name, b"no image")})
    found = staff_client.get(reverse("diagnosis:patient_list"), {"q": "Zebedee"})
    key = ApiToken.issue(staff, "t")[1]
    api_found = staff_client.get(reverse("api:patient-list"), {"q": mrn}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert (stored.status_code, refused.status_code) == (302, 200)
    assert name in found.content.decode() and api_found.json()["count"] == 1

    body = staff_client.get(METRICS).content.decode()

    for identifier in ("Zebedee", "Quinton", mrn, "ZQF", file_name, "zebedee"):
        assert identifier not in body
    assert "/patients/" not in body  # views by name, never by path


@pytest.mark.django_db
def test_the_workers_metrics_add_up_in_multiprocess_mode(client, tiny_model, tmp_path, monkeypatch):
    folder = tmp_path / "metrics"
    folder.mkdir()
    worker = (
        "from dispredo_site.observability import metrics; from diagnosis.intake import metrics as intake; "
        "intake.count_stored_upload(); metrics.observe_request('diagnosis:upload', 'POST', 302, 0.2)"
    )
    for _ in range(2):  # two workers, one after the other, each with its own files
        subprocess.run(
            [sys.executable, "-c", worker], cwd=REPO, check=True, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))

    samples = scrape(client)

    assert value(samples, "dispredo_uploads_total", outcome="stored") == 2
    assert value(samples, "dispredo_http_request_duration_seconds_count", view=UPLOAD, method="POST", status="3xx") == 2
    assert value(samples, "dispredo_active_model_info", version=tiny_model.name) == 1


def test_bin_start_logs_no_raw_paths_and_marks_finished_workers(monkeypatch, tmp_path):
    from gunicorn.app.wsgiapp import WSGIApplication

    from dispredo_site import gunicorn_conf

    # gunicorn itself reads bin/start's command line and its config module.
    monkeypatch.setattr(sys, "argv", ["gunicorn", *bin_start_argv()])
    config = WSGIApplication().cfg
    assert config.accesslog is None and config.errorlog == "-"
    assert config.child_exit is gunicorn_conf.child_exit

    # A finished worker's live gauges go; its counters stay in the totals.
    for name in ("gauge_livesum_4242.db", "counter_4242.db", "gauge_livesum_4343.db"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config.child_exit(None, SimpleNamespace(pid=4242))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_4242.db", "gauge_livesum_4343.db"]


def bin_start_argv():
    """gunicorn's arguments in bin/start, each ${VAR:-default} at its default."""
    text = START.read_text()
    command = text[text.index("exec gunicorn"):].replace("\\\n", " ").splitlines()[0]
    return shlex.split(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command))[2:]


def test_bin_start_empties_the_metrics_folder_of_the_data_dir(tmp_path):
    text = START.read_text()
    lines = text[text.index("export PROMETHEUS_MULTIPROC_DIR"):text.index("echo ")]
    folder = tmp_path / "data" / "metrics"
    folder.mkdir(parents=True)
    (folder / "counter_99.db").write_bytes(b"stale")

    result = subprocess.run(
        ["bash", "-euc", lines + 'echo "$PROMETHEUS_MULTIPROC_DIR"'],
        env={"PATH": os.environ["PATH"], "DISPREDO_DATA_DIR": str(tmp_path / "data"), "ROOT": str(REPO)},
        capture_output=True, text=True, check=True,
    )

    assert result.stdout.strip() == str(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_short_metrics_token_is_refused_at_start(tmp_path):
    env = {**os.environ, "DISPREDO_METRICS_TOKEN": "guessable", "DISPREDO_DATA_DIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-c", "import dispredo_site.settings"], cwd=REPO, env=env, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert "DISPREDO_METRICS_TOKEN must be at least 16 characters" in result.stderr


def test_a_start_removes_the_files_of_ended_processes_only(tmp_path):
    from dispredo_site.observability.multiprocess import remove_files_of_ended_processes

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(ended.stdout), os.getpid()
    for name in (f"counter_{dead}.db", f"histogram_{dead}.db", f"counter_{alive}.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")

    assert remove_files_of_ended_processes(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{alive}.db", "notes.txt"]


def test_the_dicom_listener_writes_its_counts_where_the_web_server_reads_them():
    folder = '"${DISPREDO_METRICS_DIR:-${DISPREDO_DATA_DIR:-$ROOT/var}/metrics}"'
    assert f"export PROMETHEUS_MULTIPROC_DIR={folder}" in START.read_text()
    listener = (REPO / "bin" / "dicom-listener").read_text()
    assert f"export PROMETHEUS_MULTIPROC_DIR={folder}" in listener
    assert listener.index("PROMETHEUS_MULTIPROC_DIR") < listener.index("exec python manage.py dicom_listener")
