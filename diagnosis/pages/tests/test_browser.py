"""End to end in a real headless browser: sign in, upload an X-ray, see the diagnosis."""

import pytest
from django.contrib.auth import get_user_model

from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Patient, XRay, XRayStatus
from dispredo_site.testing.browser import MARKS, sign_in
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = MARKS


@pytest.mark.django_db(transaction=True)
def test_staff_sign_in_upload_and_see_the_diagnosis(live_server, browser_page, sample_images, tmp_path):
    get_user_model().objects.create_user("radiographer", password="a long local passphrase", is_staff=True)
    Patient.objects.create(mrn="E2E-1", name="Rosalind Franklin", sex="F")
    build_tiny_artefact(tmp_path / "model", name="browser-test-model")
    register_model_version(tmp_path / "model", activate=True)
    page = browser_page

    page.goto(f"{live_server.url}/upload/")
    assert "/accounts/login/" in page.url
    sign_in(page, live_server.url, "radiographer", "a long local passphrase", "/upload/")

    assert page.get_attribute("#preview", "src").endswith("/static/img/placeholder.svg")
    page.select_option("#id_patient", label="Rosalind Franklin (E2E-1)")
    page.set_input_files("#id_image", str(sample_images["rgba_1024"]))
    assert page.text_content("#file-name").startswith(sample_images["rgba_1024"].name)
    page.click("#submit-upload")
    page.wait_for_url(f"{live_server.url}/xrays/*/")

    assert "Research use only: not for clinical diagnosis" in page.text_content(".notice")
    assert page.locator("#findings tbody tr").count() == 14
    assert page.text_content("#model-version").strip() == "browser-test-model"

    # The page explains itself, and every bar carries a visible threshold marker inside it.
    assert page.is_visible("#explanation")
    assert "It is a model score, not a diagnosis" in page.text_content("#explanation")
    markers = page.locator("#findings .bar .marker")
    assert markers.count() == 14
    for index in range(14):
        marker, bar = markers.nth(index).bounding_box(), page.locator("#findings .bar").nth(index).bounding_box()
        assert marker["width"] >= 2 and marker["height"] >= bar["height"]
        assert bar["x"] <= marker["x"] <= bar["x"] + bar["width"]
    # The heatmap is off until asked for; the toggle shows it, and a row reached by keyboard picks its finding.
    assert page.locator("#heatmap").is_hidden()
    assert not page.is_checked("#heatmap-toggle")
    page.check("#heatmap-toggle")
    assert page.locator("#heatmap").is_visible()
    page.uncheck("#heatmap-toggle")
    assert page.locator("#heatmap").is_hidden()
    row = page.locator("#findings tbody tr").nth(3)
    row.focus()
    page.keyboard.press("Enter")
    assert page.locator("#heatmap").is_visible()
    assert page.input_value("#heatmap-finding") == row.get_attribute("data-finding")
    # On a phone-sized screen the result page does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # The X-ray itself is shown through the access-checked view and decodes in the browser.
    page.wait_for_function("document.getElementById('xray-image').naturalWidth > 0")
    assert page.evaluate("document.getElementById('xray-image').naturalWidth") == 1024
    page.screenshot(path=str(tmp_path / "result.png"), full_page=True)

    xray = XRay.objects.get()
    assert xray.status == XRayStatus.DONE and xray.predictions.count() == 14
