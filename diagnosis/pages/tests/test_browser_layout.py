"""At a phone's width (390 px) no page scrolls sideways, and the worklist filters are labelled."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.intake.scoring import score_xray
from diagnosis.intake.storing import store_xray
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.pages.forms import WorklistFilterForm
from diagnosis.records.models import Patient, XRayStatus
from dispredo_core.imaging import open_xray
from dispredo_site.testing.browser import MARKS, chromium_page, sign_in
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.tiny_model import build_tiny_artefact

pytestmark = MARKS

PHONE = {"width": 390, "height": 844}
# Whether the page is wider than the window, with both widths for the failure message.
SCROLL_WIDTHS = "[document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture
def phone_page(monkeypatch):
    with chromium_page(monkeypatch, PHONE) as page:
        yield page


def assert_no_sideways_scroll(page, url):
    page.goto(url)
    scroll_width, window_width = page.evaluate(SCROLL_WIDTHS)
    assert scroll_width <= window_width, f"{url} is {scroll_width} px wide in a {window_width} px window"


@pytest.mark.django_db(transaction=True)
def test_no_page_scrolls_sideways_at_390_px(live_server, phone_page, sample_images, tmp_path):
    staff = get_user_model().objects.create_user("radiographer", password="a long local passphrase", is_staff=True)
    patient = Patient.objects.create(
        mrn="MRN-2026-000123", name="Maria Salomea Skłodowska-Curie", sex="F", notes="Long-standing cough; " * 8
    )
    build_tiny_artefact(tmp_path / "model", name="layout-test-model")
    version = register_model_version(tmp_path / "model", activate=True)
    path = sample_images["px_256"]
    data = path.read_bytes()
    image = open_xray(data)
    xray = store_xray(patient=patient, data=data, original_name=path.name, image=image, uploaded_by=staff)
    assert score_xray(xray, image) == XRayStatus.DONE
    # A row with many flagged chips: the widest the worklist gets.
    make_xray(patient, version=version, flagged={"Cardiomegaly", "Pleural_Thickening", "Pneumothorax", "Effusion"})
    page = phone_page

    assert_no_sideways_scroll(page, f"{live_server.url}{reverse('login')}")
    sign_in(page, live_server.url, "radiographer", "a long local passphrase", "/")

    for name, args in [
        ("diagnosis:worklist", []),
        ("diagnosis:patient_list", []),
        ("diagnosis:patient_detail", [patient.pk]),
        ("diagnosis:patient_create", []),
        ("diagnosis:patient_edit", [patient.pk]),
        ("diagnosis:upload", []),
    ]:
        assert_no_sideways_scroll(page, f"{live_server.url}{reverse(name, args=args)}")

    # The worklist's tables scroll inside their own box, and its filters are labelled.
    page.goto(f"{live_server.url}{reverse('diagnosis:worklist')}")
    assert page.locator("table.list").count() == 1
    assert page.locator(".table-wrap > table.list").count() == 1
    page.get_by_label("Status", exact=True).select_option("done")
    page.get_by_label(WorklistFilterForm()["finding"].label, exact=True).select_option("Effusion")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**/?status=done&finding=Effusion&reading=&sort=")
    assert page.locator("table.list tbody tr").count() == 1


@pytest.mark.django_db(transaction=True)
def test_at_390_px_the_result_page_keeps_the_finding_names_in_view_and_the_findings_before_the_reading(
    live_server, phone_page, sample_images, tmp_path
):
    get_user_model().objects.create_user("radiographer", password="a long local passphrase", is_staff=True)
    patient = Patient.objects.create(mrn="MRN-390", name="Chien-Shiung Wu", sex="F")
    build_tiny_artefact(tmp_path / "model", name="layout-test-model", unreliable=("Pleural_Thickening", "Hernia"))
    register_model_version(tmp_path / "model", activate=True)
    data = sample_images["gray_1024"].read_bytes()
    image = open_xray(data)
    xray = store_xray(patient=patient, data=data, original_name="chest.png", image=image, uploaded_by=None)
    assert score_xray(xray, image) == XRayStatus.DONE
    page = phone_page
    page.goto(f"{live_server.url}{xray.get_absolute_url()}")
    sign_in(page, live_server.url, "radiographer", "a long local passphrase", xray.get_absolute_url())

    # On a narrow screen: the image, then the model's findings, then the reading.
    tops = page.evaluate(
        "['.image-panel', '.findings', '#reading'].map(s => document.querySelector(s).getBoundingClientRect().top)"
    )
    assert tops == sorted(tops) and len(set(tops)) == 3, tops
    # The scores table scrolls sideways in its box, and the finding names stay in view as it does.
    wrap = page.locator(".findings .table-wrap")
    scroll_width, client_width = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert scroll_width > client_width, "the table fits: nothing to check"
    name = page.locator("#findings tbody tr:first-child th")
    score = page.locator("#findings tbody tr:first-child td.num").first
    name.scroll_into_view_if_needed()
    before = name.bounding_box(), score.bounding_box()
    wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; }")
    page.wait_for_function("document.querySelector('.findings .table-wrap').scrollLeft > 0")
    after = name.bounding_box(), score.bounding_box()
    box = wrap.bounding_box()
    assert after[0]["x"] == before[0]["x"] and box["x"] <= after[0]["x"] < box["x"] + box["width"]
    assert after[1]["x"] < before[1]["x"]  # the rest of the row did move
    # The name's cell lies over what scrolls under it: the name is what is seen there.
    covering = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('th')?.textContent.trim()",
        [after[0]["x"] + 4, after[0]["y"] + after[0]["height"] / 2],
    )
    assert covering.startswith(name.text_content().strip().split()[0])
    page.locator(".findings").screenshot(path=str(tmp_path / "findings-390-scrolled.png"))
    # The two score columns have headings of their own.
    headings = page.locator("#findings thead th").all_inner_texts()
    assert headings[1].startswith("Score and threshold") and headings[2] == "Score"
    assert_no_sideways_scroll(page, f"{live_server.url}{xray.get_absolute_url()}")
    page.screenshot(path=str(tmp_path / "result-390.png"), full_page=True)

    # Side by side on a wide screen: the findings to the right, the reading under the image.
    page.set_viewport_size({"width": 1280, "height": 900})
    boxes = {s: page.locator(s).bounding_box() for s in (".image-panel", ".findings", "#reading")}
    assert boxes[".findings"]["x"] > boxes[".image-panel"]["x"] + boxes[".image-panel"]["width"]
    assert boxes["#reading"]["x"] == boxes[".image-panel"]["x"]
    assert 0 < boxes["#reading"]["y"] - (boxes[".image-panel"]["y"] + boxes[".image-panel"]["height"]) <= 32
    page.screenshot(path=str(tmp_path / "result-1280.png"), full_page=True)
