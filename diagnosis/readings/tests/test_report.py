"""The printable report of an X-ray: patient, study, the current reading, and the model's output apart."""

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.readings.models import Reading
from diagnosis.records.models import AuditEvent
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.helpers import upload_file

SIGNED_AT = datetime.datetime(2026, 3, 4, 9, 30, tzinfo=datetime.timezone.utc)


def marks(present=(), not_assessable=()):
    return {
        name: "present" if name in present else "not_assessable" if name in not_assessable else "absent"
        for name in FINDINGS
    }


def signed_reading(xray, user, *, version=1, present=(), not_assessable=(), impression="", reason="", at=SIGNED_AT):
    return Reading.objects.create(
        xray=xray, version=version, status="signed", marks=marks(present, not_assessable), impression=impression,
        amendment_reason=reason, created_by=user, updated_by=user, signed_by=user, signed_at=at,
    )


def report_of(client, xray):
    response = client.get(reverse("diagnosis:xray_report", args=[xray.pk]))
    assert response.status_code == 200
    return response.content.decode()


def text_of(page, element_id):
    """The text inside the element with ``element_id``, tags stripped and spaces collapsed."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(p|section|dd|div)>', page, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


@pytest.fixture
def reader(db):
    return get_user_model().objects.create_user(
        "reader", password="correct horse battery", is_staff=True, first_name="Grace", last_name="Hopper"
    )


@pytest.mark.django_db
def test_a_signed_report_shows_patient_study_findings_impression_and_signer(staff_client, patient, reader, tiny_model):
    patient.date_of_birth = datetime.date(1950, 12, 10)
    patient.save()
    xray = make_xray(patient, version=tiny_model, flagged={"Effusion"})
    xray.study_date, xray.accession_number = datetime.date(2026, 3, 1), "ACC-778"
    xray.save()
    signed_reading(xray, reader, present={"Effusion", "Cardiomegaly"}, not_assessable={"Hernia"},
                   impression="Small right effusion.\nHeart enlarged.")
    page = report_of(staff_client, xray)

    assert "<h1>Ada Lovelace</h1>" in page
    assert "<dd>MRN001</dd>" in page and "<dd>Female</dd>" in page and "<dd>1950-12-10</dd>" in page
    assert text_of(page, "study-date") == "2026-03-01"
    assert text_of(page, "accession-number") == "ACC-778"
    assert f'src="{reverse("diagnosis:xray_image", args=[xray.pk])}"' in page
    assert text_of(page, "present") == "Present: Effusion , Cardiomegaly"
    assert "<strong>Effusion</strong>" in page
    absent = text_of(page, "absent").removeprefix("Absent: ").split(", ")
    assert len(absent) == 11 and "Effusion" not in absent and "Hernia" not in absent
    assert text_of(page, "not-assessable") == "Not assessable: Hernia"
    assert "<p>Small right effusion.<br>Heart enlarged.</p>" in page
    assert text_of(page, "signoff") == "Signed off by Grace Hopper on 2026-03-04 09:30."
    assert text_of(page, "report-status") == "Signed off"
    assert "DRAFT" not in page and "Not read yet" not in page


@pytest.mark.django_db
def test_the_ai_box_names_the_model_its_flags_scores_and_the_notice(staff_client, patient, reader, tmp_path):
    from diagnosis.lifecycle.registry import register_model_version
    from dispredo_site.testing.tiny_model import build_tiny_artefact

    build_tiny_artefact(tmp_path / "m", name="clinic-model-7", unreliable=("Hernia", "Nodule"))
    version = register_model_version(tmp_path / "m", activate=True)
    xray = make_xray(patient, version=version, flagged={"Effusion"})
    signed_reading(xray, reader)
    page = report_of(staff_client, xray)

    box = page[page.index('id="ai-box"'):page.index("</section>", page.index('id="ai-box"'))]
    assert "<h2 id=\"ai-title\">AI assistance</h2>" in box
    assert '<strong id="ai-model-version">clinic-model-7</strong>' in box
    assert "Research use only: not for clinical diagnosis." in text_of(page, "ai-notice")
    assert text_of(page, "ai-flagged") == "Flagged: Effusion ."
    # The 12 reliable findings with score and threshold; the two others named as not reliable.
    cell = r'<td class="num">([^<]+)</td>'
    rows = re.findall(rf'<tr[^>]*><th scope="row">([^<]+)</th>{cell}{cell}', box)
    assert len(rows) == 12
    assert ("Effusion (flagged)", "90.0&nbsp;%", "50.0&nbsp;%") in rows
    assert ("Atelectasis", "10.0&nbsp;%", "50.0&nbsp;%") in rows
    assert text_of(page, "ai-unreliable-findings") == "Not reliable with this model, so never flagged: Nodule, Hernia."
    # The reader's findings are not in the box, and the box's model output is not in the findings.
    assert "Present" not in box and "AI" not in page[page.index('id="reading"'):page.index('id="ai-box"')]


@pytest.mark.django_db
def test_a_draft_is_marked_draft_and_not_signed_off(staff_client, patient, reader, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    Reading.objects.create(
        xray=xray, marks={"Effusion": "present"}, impression="Provisional.", created_by=reader, updated_by=reader
    )
    page = report_of(staff_client, xray)

    assert text_of(page, "report-status") == "DRAFT not signed off"
    assert "Signed off by" not in page
    assert text_of(page, "signoff").startswith("DRAFT: not signed off; last saved by Grace Hopper on ")
    assert text_of(page, "present") == "Present: Effusion"
    # A draft may mark fewer than 14 findings: the rest are listed as not marked yet.
    assert len(text_of(page, "unmarked").removeprefix("Not marked yet: ").split(", ")) == 13
    assert 'class="report unsigned"' in page


@pytest.mark.django_db
def test_an_amendment_shows_its_version_and_reason_and_supersedes(staff_client, patient, reader, staff, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    signed_reading(xray, staff, present={"Mass"}, impression="Mass in the left upper lobe.")
    signed_reading(xray, reader, version=2, present={"Nodule"}, impression="A nodule, not a mass.",
                   reason="Measured again: 2 cm.", at=SIGNED_AT + datetime.timedelta(days=1))
    page = report_of(staff_client, xray)

    assert text_of(page, "report-status") == "Signed off · amended"
    assert text_of(page, "signoff") == (
        "Signed off by Grace Hopper on 2026-03-05 09:30. Amendment: version 2; reason: Measured again: 2 cm."
    )
    assert text_of(page, "present") == "Present: Nodule"
    assert "A nodule, not a mass." in page and "left upper lobe" not in page


@pytest.mark.django_db
def test_a_draft_amendment_names_the_signed_version_it_would_replace(staff_client, patient, reader, staff, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    signed_reading(xray, staff, present={"Mass"})
    Reading.objects.create(xray=xray, version=2, marks=marks({"Nodule"}), created_by=reader, updated_by=reader)
    signoff = text_of(report_of(staff_client, xray), "signoff")
    assert signoff.startswith("DRAFT: not signed off")
    assert signoff.endswith("This is draft version 2; version 1 was signed off by nurse on 2026-03-04 09:30.")


@pytest.mark.django_db
def test_an_unread_x_ray_says_not_read_yet_and_the_upload_date_stands_for_the_study_date(staff_client, patient):
    xray = make_xray(patient, uploaded_at=datetime.datetime(2026, 2, 2, 8, 0, tzinfo=datetime.timezone.utc))
    page = report_of(staff_client, xray)
    assert text_of(page, "report-status") == "Not read yet"
    assert text_of(page, "not-read") == "Not read yet: no clinician has read this X-ray."
    assert text_of(page, "study-date") == "2026-02-02 (uploaded)"
    assert 'id="accession-number"' not in page
    assert text_of(page, "ai-none") == (
        "Pending: no model was installed when this X-ray was uploaded, and none is active now. It is scored once "
        "a model version is active (manage.py rescore)."
    )
    assert "Research use only: not for clinical diagnosis." in text_of(page, "ai-notice")


@pytest.mark.django_db
def test_viewing_a_report_is_in_the_audit_trail(staff_client, patient):
    xray = make_xray(patient)
    report_of(staff_client, xray)
    event = AuditEvent.objects.get()
    assert (event.username, event.action, event.object_type, event.object_id, event.patient_mrn, event.detail) == (
        "nurse", "view", "xray", xray.pk, "MRN001", "report"
    )


@pytest.mark.django_db
def test_the_report_is_for_staff_only(client, patient):
    xray = make_xray(patient)
    url = reverse("diagnosis:xray_report", args=[xray.pk])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login") + "?next=")
    client.force_login(get_user_model().objects.create_user("visitor", password="correct horse battery"))
    assert client.get(url).status_code == 403
    assert client.get(reverse("diagnosis:xray_report", args=[xray.pk + 1])).status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_missing_x_ray_has_no_report(staff_client):
    assert staff_client.get(reverse("diagnosis:xray_report", args=[999])).status_code == 404


@pytest.mark.django_db
def test_the_report_prints_without_the_app_around_it(staff_client, patient, settings):
    """The print stylesheet hides navigation, messages, footer and buttons, fits the smaller of A4
    and Letter, and keeps the AI box on one page; the Print button needs no inline script."""
    page = report_of(staff_client, make_xray(patient))
    assert 'href="/static/css/report.css"' in page and 'src="/static/js/report.js"' in page
    assert "onclick" not in page and "window.print" not in page
    css = (settings.BASE_DIR / "static" / "css" / "report.css").read_text()
    printed = css[css.index("@media print"):]
    assert "body > header" in printed and "body > footer" in printed and "main > .message" in printed
    assert ".no-print" in printed and "button" in printed
    margins = re.search(r"@page\s*{\s*margin:\s*(\d+)mm\s+(\d+)mm;", css)
    # The printable area of the smaller page in each dimension (A4 is narrower, Letter shorter).
    assert 210 - 2 * int(margins.group(2)) >= 190 and 279.4 - 2 * int(margins.group(1)) >= 250
    assert re.search(r"\.ai-box\s*{[^}]*break-inside:\s*avoid", css)
    assert "window.print()" in (settings.BASE_DIR / "static" / "js" / "report.js").read_text()


@pytest.mark.django_db
def test_the_report_of_an_uploaded_x_ray_shows_its_real_image(staff_client, patient, tiny_model, sample_images, reader):
    upload_file(staff_client, sample_images["px_256"], patient)
    xray = patient.xrays.get()
    signed_reading(xray, reader, present={"Effusion"})
    page = report_of(staff_client, xray)
    assert 'id="ai-model-version">tiny-test-model<' in page
    image = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert f"<dd>No. {xray.pk}</dd>" in page


@pytest.mark.django_db
def test_the_report_only_answers_get(staff_client, patient):
    xray = make_xray(patient)
    assert staff_client.post(reverse("diagnosis:xray_report", args=[xray.pk])).status_code == 405
    assert not AuditEvent.objects.exists()
