"""End to end in headless Chromium: a reader marks every finding of an X-ray, signs the reading off and
prints its report, which fits one page."""

import pytest

from diagnosis.intake.scoring import score_xray
from diagnosis.intake.storing import store_xray
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.readings.models import Reading
from diagnosis.records.models import Patient
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import open_xray
from dispredo_site.testing.browser import MARKS, pages_in, sign_in
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = MARKS


@pytest.mark.django_db(transaction=True)
def test_a_reader_marks_every_finding_and_signs_off(live_server, browser_page, reader, sample_images, tmp_path):
    patient = Patient.objects.create(mrn="E2E-2", name="Dorothy Hodgkin", sex="F")
    build_tiny_artefact(tmp_path / "model", name="reading-test-model")
    register_model_version(tmp_path / "model", activate=True)
    path = sample_images["px_256"]
    image = open_xray(path.read_bytes())
    xray = store_xray(patient=patient, data=path.read_bytes(), original_name=path.name, image=image, uploaded_by=reader)
    score_xray(xray, image)
    page = browser_page

    page.goto(f"{live_server.url}{xray.get_absolute_url()}")
    sign_in(page, live_server.url, "reader", "correct horse battery", f"{xray.get_absolute_url()}")

    # Nothing is marked until the reader marks it, whatever the model scored.
    assert page.locator("#reading-form input[type=radio]:checked").count() == 0
    assert page.locator("#findings tbody tr").count() == 14
    for name in FINDINGS:
        page.get_by_role("radiogroup", name=name.replace("_", " ").capitalize()).get_by_label(
            "Present" if name == "Effusion" else "Absent", exact=True
        ).check()
    assert page.locator("#reading-form input[type=radio]:checked").count() == 14
    page.fill("#id_impression", "Small left pleural effusion.")
    page.click("#sign-off")
    page.wait_for_selector("#reading-marks")

    assert "Reading signed off." in page.text_content("main")
    assert page.text_content("#reading-status").strip().startswith("Signed off by reader on")
    assert page.text_content("#reading-marks tr[data-finding=Effusion] td") == "Present"
    assert page.text_content("#reading-marks tr[data-finding=Hernia] td") == "Absent"
    assert page.text_content("#reading-impression") == "Small left pleural effusion."
    assert page.locator("#reading-form").count() == 0
    # The amendment form is folded away until asked for.
    assert page.locator("#amendment-form").is_hidden()
    page.click("#amend summary")
    assert page.locator("#amendment-form").is_visible()
    # On a phone-sized screen the page with the reading does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    reading = Reading.objects.get()
    assert (reading.status, reading.signed_by, reading.marks["Effusion"]) == ("signed", reader, "present")

    # The signed reading's report, from the result page's link, prints on one page.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#report-link")
    page.wait_for_url(f"{live_server.url}/xrays/{xray.pk}/report/")
    page.emulate_media(media="print")
    assert page.text_content("#signoff").split()[:4] == ["Signed", "off", "by", "reader"]
    assert "DRAFT" not in page.text_content("main")
    assert "Small left pleural effusion." in page.text_content("main")
    assert pages_in(page.pdf(format="A4", print_background=True)) == 1
