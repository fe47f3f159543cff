"""Finding 6 in a real browser: under the Content Security Policy every page's scripts still work,
the heatmap's json_script data block is read, and Chromium reports no violation."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.intake.scoring import score_xray
from diagnosis.intake.storing import store_xray
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import Patient, XRayStatus
from dispredo_core.imaging import open_xray
from dispredo_site.testing.browser import MARKS, chromium_page, sign_in
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = MARKS


@pytest.fixture
def browser_page(monkeypatch):
    with chromium_page(monkeypatch, {"width": 1280, "height": 900}) as page:
        violations = []
        page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
        page.violations = violations
        yield page


@pytest.mark.django_db(transaction=True)
def test_the_pages_scripts_run_under_the_policy(live_server, browser_page, sample_images, tmp_path):
    staff = get_user_model().objects.create_user("radiographer", password="a long local passphrase", is_staff=True)
    scanned = Patient.objects.create(mrn="CSP-1", name="Rosalind Franklin", sex="F")
    empty = Patient.objects.create(mrn="CSP-2", name="Dorothy Hodgkin", sex="F")
    build_tiny_artefact(tmp_path / "model", name="csp-test-model")
    register_model_version(tmp_path / "model", activate=True)
    path = sample_images["px_256"]
    image = open_xray(path.read_bytes())
    xray = store_xray(patient=scanned, data=path.read_bytes(), original_name=path.name, image=image, uploaded_by=staff)
    assert score_xray(xray, image) == XRayStatus.DONE
    page = browser_page

    page.goto(f"{live_server.url}{reverse('login')}")
    sign_in(page, live_server.url, "radiographer", "a long local passphrase", "/")

    # The result page: the heatmap script reads its json_script block and draws.
    page.goto(f"{live_server.url}{xray.get_absolute_url()}")
    page.wait_for_function("document.getElementById('xray-image').naturalWidth > 0")
    page.check("#heatmap-toggle")
    assert page.locator("#heatmap").is_visible()

    # The upload page's preview is a blob: URL, allowed by img-src.
    page.goto(f"{live_server.url}{reverse('diagnosis:upload')}")
    page.set_input_files("#id_image", str(path))
    page.wait_for_function("document.getElementById('preview').src.startsWith('blob:')")
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")

    # Deleting a patient asks first, from a script file instead of an inline onclick; declining keeps it.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}{reverse('diagnosis:patient_detail', args=[empty.pk])}")
    page.click("button.danger")
    assert dialogs == ["Delete this patient record?"]
    assert page.url.endswith(reverse("diagnosis:patient_detail", args=[empty.pk]))
    assert Patient.objects.filter(pk=empty.pk).exists()

    # The admin's own scripts (its theme toggle and widgets) are files too.
    staff.is_superuser = True
    staff.save()
    page.goto(f"{live_server.url}{reverse('admin:diagnosis_patient_change', args=[scanned.pk])}")
    assert page.locator("#patient_form").count() == 1

    assert page.violations == []
