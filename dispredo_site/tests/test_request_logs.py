"""One JSON log line per request (request id, route, status, duration, user id) with the id sent back
in X-Request-ID, the id on every other line of the request, and no patient name, record number or
file name in any log line."""

import io
import json
import logging
import sys
from contextlib import contextmanager

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from PIL import Image
from pydicom.uid import generate_uid

from api.models import ApiToken
from diagnosis.intake.scoring import score_xray
from diagnosis.interop.dicom_listener import REFUSED, SUCCESS, receive
from diagnosis.records.models import Patient, XRay, XRayStatus
from dispredo_site.observability.logs import JsonFormatter

REQUESTS = "dispredo.requests"
NAME, MRN, FILE_NAME = "Zebedee Quinton-Fairweather", "ZQF-778121", "zebedee_quinton_chest.png"
DICOM_NAME, DICOM_ID = "Quinton^Zebedee", "ZQD-55123"


@pytest.fixture
def log_lines():
    """The JSON lines the configured console handler writes, parsed (its stream swapped for a buffer)."""
    handler = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    handler.setStream(previous)


def request_lines(lines):
    return [line for line in lines if line["logger"] == REQUESTS]


@pytest.mark.django_db
def test_each_request_gives_one_json_line_with_its_request_id(staff_client, staff, patient, log_lines):
    response = staff_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))

    assert response.status_code == 200
    [line] = request_lines(log_lines())
    assert set(line) == {
        "time", "level", "logger", "request_id", "message", "method", "route", "view", "status", "duration_ms", "user_id"
    }
    assert line["request_id"] == response["X-Request-ID"] and len(line["request_id"]) == 32
    assert line["time"].endswith("Z") and line["level"] == "INFO"
    assert (line["method"], line["route"], line["view"]) == ("GET", "/patients/<int:pk>/", "diagnosis:patient_detail")
    assert line["status"] == 200 and line["message"].startswith("GET /patients/<int:pk>/ 200 ")
    assert 0 < line["duration_ms"] < 60_000
    assert line["user_id"] == staff.pk


@pytest.mark.django_db
def test_a_new_id_is_made_for_each_request(client, log_lines):
    ids = {client.get("/healthz")["X-Request-ID"] for _ in range(3)}

    assert len(ids) == 3
    assert {line["request_id"] for line in request_lines(log_lines())} == ids
    assert {line["user_id"] for line in request_lines(log_lines())} == {None}


@pytest.mark.parametrize(
    "incoming, kept",
    [
        ("lb-7f3a9c01.2", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("two words", False),
        ("x\r\nSet-Cookie: a=b", False),
        ("abc\n", False),
        ("", False),
    ],
)
def test_an_incoming_request_id_is_kept_only_when_it_is_a_short_safe_token(client, log_lines, incoming, kept):
    response = client.get("/favicon.ico", HTTP_X_REQUEST_ID=incoming)

    assert (response["X-Request-ID"] == incoming) is kept
    assert request_lines(log_lines())[0]["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_the_line_names_the_route_never_the_query_string(staff_client, patient, log_lines):
    staff_client.get(reverse("diagnosis:patient_list"), {"q": "Lovelace"})
    staff_client.get("/no/such/page/Lovelace/", {"q": "Lovelace"})
    staff_client.get("/static/css/dispredo.css?v=Lovelace")

    lines = request_lines(log_lines())
    assert [(line["route"], line["view"], line["status"]) for line in lines] == [
        ("/patients/", "diagnosis:patient_list", 200),
        ("unmatched", "unmatched", 404),
        ("/static/*", "static", 200),
    ]
    assert not any("Lovelace" in json.dumps(line) for line in log_lines())


@pytest.mark.django_db
def test_a_request_refused_before_its_view_is_logged_with_its_route(client, log_lines):
    response = client.post(reverse("diagnosis:upload"), {"new_name": "Lovelace"})

    assert response.status_code == 302  # sent to sign in
    [line] = request_lines(log_lines())
    assert (line["view"], line["route"], line["status"], line["user_id"]) == ("diagnosis:upload", "/upload/", 302, None)


@pytest.mark.django_db
def test_the_apps_own_lines_carry_the_request_id(staff_client, patient, tiny_model, sample_images, log_lines):
    image = SimpleUploadedFile("a.png", sample_images["px_64"].read_bytes())
    staff_client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": image})
    xray = XRay.objects.get()
    xray.image.storage.delete(xray.image.name)

    response = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))

    assert response.status_code == 404
    missing = [line for line in log_lines() if line["message"] == f"The file of X-ray {xray.pk} is missing"]
    assert [line["request_id"] for line in missing] == [response["X-Request-ID"]]
    assert missing[0]["level"] == "ERROR" and missing[0]["logger"] == "diagnosis.pages.views"


def test_a_database_errors_quoted_row_values_are_left_out_of_its_traceback():
    # What PostgreSQL says about a duplicate record number (SQLite names only the column).
    error = IntegrityError(
        'duplicate key value violates unique constraint "diagnosis_patient_mrn_key"\n'
        f"DETAIL:  Key (mrn)=({MRN}) already exists.\n"
    )
    try:
        raise error
    except IntegrityError:
        record = logging.makeLogRecord({"name": "diagnosis", "msg": "Failed", "exc_info": sys.exc_info()})
    line = json.loads(JsonFormatter().format(record))

    assert "diagnosis_patient_mrn_key" in line["exception"] and MRN not in line["exception"]


@contextmanager
def every_log_record(caplog):
    """Every logger at DEBUG, and those that do not pass records up given caplog's handler too."""
    caplog.set_level(logging.DEBUG)
    loggers = [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    saved = [(item, item.level) for item in loggers]
    fed = [item for item in loggers if not item.propagate]
    for item in loggers:
        item.setLevel(logging.DEBUG)
    for item in fed:
        item.addHandler(caplog.handler)
    try:
        yield
    finally:
        for item, level in saved:
            item.setLevel(level)
        for item in fed:
            item.removeHandler(caplog.handler)


def chest_png():
    """A 256 x 256 grayscale PNG (the tiny model has no input guard, so it is stored and scored)."""
    rows = np.linspace(20, 230, 256, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.tile(rows, (256, 1))).save(buffer, format="PNG")
    return buffer.getvalue()


def edited_dicom(dicom_sample, tmp_path):
    """A real chest DICOM whose header names our made-up patient."""
    dataset = pydicom.dcmread(dicom_sample / "rsna_cr_pa_normal.dcm")
    dataset.PatientName, dataset.PatientID, dataset.SOPInstanceUID = DICOM_NAME, DICOM_ID, generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    path = tmp_path / "edited.dcm"
    dataset.save_as(path)
    return path.read_bytes()


def leaks(caplog, log_lines, forbidden):
    """(word, line) for each forbidden word in a captured record (as the JSON formatter writes it,
    traceback included) or in a line the console handler wrote."""
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    lines += [json.dumps(line, ensure_ascii=False) for line in log_lines()]
    assert lines
    return [(word, line) for line in lines for word in forbidden if word.lower() in line.lower()]


@pytest.mark.django_db
def test_no_log_line_holds_a_patients_name_record_number_or_file_name(staff_client, staff, tiny_model, caplog, log_lines):
    image = chest_png()
    key = ApiToken.issue(staff, "ris")[1]
    upload = reverse("diagnosis:upload")
    with every_log_record(caplog):
        stored = staff_client.post(upload, {"new_mrn": MRN, "new_name": NAME, "image": SimpleUploadedFile(FILE_NAME, image)})
        patient = Patient.objects.get(mrn=MRN)
        refused = staff_client.post(upload, {"patient": patient.pk, "image": SimpleUploadedFile(FILE_NAME, b"not an image")})
        api = staff_client.post(
            reverse("api:xray-list"), {"patient": patient.pk, "image": SimpleUploadedFile("zebedee_api.png", image)},
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        for query in ("Zebedee", MRN):
            staff_client.get(reverse("diagnosis:patient_list"), {"q": query})
            staff_client.get(reverse("api:patient-list"), {"q": query}, HTTP_AUTHORIZATION=f"Bearer {key}")
        xray = XRay.objects.filter(patient=patient).earliest("pk")
        pages = [("worklist", []), ("patient_detail", [patient.pk])] + [
            (name, [xray.pk]) for name in ("xray_detail", "xray_report", "xray_image")
        ]
        for name, args in pages:
            assert staff_client.get(reverse(f"diagnosis:{name}", args=args)).status_code == 200
        staff_client.get("/xrays/999999/", {"q": NAME})
        # Errors: the image file gone, then scored again without it; a record number stored twice.
        xray.image.storage.delete(xray.image.name)
        missing = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
        rescored = score_xray(XRay.objects.get(pk=xray.pk))
        with pytest.raises(IntegrityError), transaction.atomic():
            Patient.objects.create(mrn=MRN, name=NAME)

    assert (stored.status_code, refused.status_code, api.status_code, missing.status_code) == (302, 200, 201, 404)
    assert rescored == XRayStatus.FAILED
    assert len(request_lines(log_lines())) == 14
    assert any(line["message"] == f"The file of X-ray {xray.pk} is missing" for line in log_lines())
    stored_names = [row.image.name.rsplit("/", 1)[-1] for row in XRay.objects.all()]
    forbidden = ["Zebedee", "Quinton", "Fairweather", MRN, FILE_NAME, "zebedee_api", *stored_names]
    assert leaks(caplog, log_lines, forbidden) == []


@pytest.mark.django_db
def test_the_dicom_listener_logs_no_patient_of_an_object_it_refuses(tiny_model, dicom_sample, tmp_path, caplog, log_lines):
    dicom = edited_dicom(dicom_sample, tmp_path)
    with every_log_record(caplog):
        first, again = receive(dicom, "PACS"), receive(dicom, "PACS")

    assert (first.status, again.status) == (SUCCESS, REFUSED)
    assert DICOM_ID in again.message  # names who has it already: kept in the audit trail, not logged
    assert any(line["message"].startswith("Refused a DICOM object from PACS (status 0xA900)") for line in log_lines())
    assert leaks(caplog, log_lines, ["Zebedee", "Quinton", DICOM_ID, *(r.image.name for r in XRay.objects.all())]) == []


# ---- Issue 26: a 500 is logged once, with its request id and exception type, and no message ----


@pytest.fixture
def failing_xray(settings, staff):
    settings.ROOT_URLCONF = "dispredo_site.testing.failing_urls"
    patient = Patient.objects.create(mrn=MRN, name=NAME, sex="F", created_by=staff)
    from dispredo_site.testing.factories import make_xray

    xray = make_xray(patient)
    XRay.objects.filter(pk=xray.pk).update(original_name=FILE_NAME)
    return xray


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/failing/{pk}/", "/api/failing/{pk}/"])
def test_a_server_error_is_logged_once_with_its_request_id_and_exception_type(failing_xray, staff, url, log_lines, caplog):
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(staff)
    with every_log_record(caplog):
        response = client.get(url.format(pk=failing_xray.pk))

    assert response.status_code == 500
    errors = [line for line in log_lines() if line["level"] in ("ERROR", "CRITICAL")]
    [line] = errors
    assert line["logger"] == REQUESTS and line["status"] == 500
    assert line["request_id"] == response["X-Request-ID"]
    assert line["exception_type"] == "dispredo_site.testing.failing_urls.ChartError"
    # Where it failed, for whoever looks into it: the frames, with their source lines.
    assert 'failing_urls.py", line' in line["exception"] and "in _fail" in line["exception"]
    assert line["exception"].endswith("\ndispredo_site.testing.failing_urls.ChartError")
    assert leaks(caplog, log_lines, ["Zebedee", "Quinton", "Fairweather", MRN, FILE_NAME]) == []


def test_an_exception_raised_while_handling_another_is_written_as_both_types_without_messages():
    try:
        try:
            raise KeyError(NAME)
        except KeyError as first:
            raise ValueError(f"no record {MRN}") from first
    except ValueError:
        record = logging.makeLogRecord({"name": "diagnosis", "msg": "Failed", "exc_info": sys.exc_info()})
    line = json.loads(JsonFormatter().format(record))

    assert line["exception_type"] == "builtins.ValueError"
    assert "builtins.KeyError\n\nThe above exception was the direct cause of the following exception:" in line["exception"]
    assert line["exception"].endswith("builtins.ValueError")
    assert NAME not in json.dumps(line) and MRN not in json.dumps(line)
