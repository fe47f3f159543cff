"""In a real headless browser: a signed-off X-ray's report prints on one page, on A4 and on Letter."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from diagnosis.readings.models import Reading
from diagnosis.records.models import Patient
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.browser import MARKS, chromium_page, pages_in, sign_in
from dispredo_site.testing.factories import make_xray

pytestmark = MARKS

# A full report: three findings present, a long impression and an amendment's reason, with the
# tiny model's 14 reliable findings filling the AI box's table (the shipped model has 4), and two
# caveats in the box (a guard override, and low resolution: the factory's X-rays are 64 x 64).
IMPRESSION = (
    "Moderate right pleural effusion with adjacent basal atelectasis. Heart size at the upper limit "
    "of normal. No pneumothorax. No focal consolidation in the left lung. Lines and tubes: none.\n"
    "Compared with no prior study. Suggest a lateral view or ultrasound to confirm the effusion and "
    "follow-up in six weeks after treatment."
)


@pytest.mark.django_db(transaction=True)
def test_a_signed_off_report_prints_on_one_page_on_a4_and_letter(live_server, monkeypatch, sample_images, tiny_model,
                                                                  tmp_path):
    user = get_user_model().objects.create_user(
        "reader", password="a long local passphrase", is_staff=True, first_name="Grace", last_name="Hopper"
    )
    patient = Patient.objects.create(mrn="E2E-REPORT-1", name="Rosalind Elsie Franklin-Pemberton", sex="F")
    xray = make_xray(patient, version=tiny_model, flagged={"Effusion"}, content=sample_images["rgba_1024"].read_bytes())
    xray.accession_number = "ACC-2026-000123"
    xray.guard_overridden = True
    xray.save()
    marks = {name: "absent" for name in FINDINGS} | {"Effusion": "present", "Atelectasis": "present",
                                                      "Cardiomegaly": "present", "Hernia": "not_assessable"}
    reason = "Effusion size corrected after comparing with the lateral view."
    for version in (1, 2):
        Reading.objects.create(
            xray=xray, version=version, status="signed", marks=marks, impression=IMPRESSION, signed_by=user,
            signed_at=timezone.now(), amendment_reason=reason if version == 2 else "",
        )

    with chromium_page(monkeypatch, {"width": 1280, "height": 900}) as page:
        page.goto(f"{live_server.url}/xrays/{xray.pk}/report/")
        sign_in(page, live_server.url, "reader", "a long local passphrase", f"/xrays/{xray.pk}/report/")
        page.wait_for_function("document.querySelector('.report-thumb img').naturalWidth > 0")
        # The Print button appears once its script has run.
        assert page.is_visible("#print-report")

        page.emulate_media(media="print")
        assert page.is_visible("#ai-box") and page.is_visible("#signoff")
        assert page.text_content("#signoff").split()[:6] == ["Signed", "off", "by", "Grace", "Hopper", "on"]
        assert "AI assistance" in page.text_content("#ai-box")
        assert "Research use only: not for clinical diagnosis." in page.text_content("#ai-box")
        assert page.is_visible("#ai-guard-override") and page.is_visible("#ai-low-resolution")
        for hidden in ("body > header", "body > footer", "#print-report", ".report-actions"):
            assert page.is_hidden(hidden), hidden
        page.screenshot(path=str(tmp_path / "report-print.png"), full_page=True)
        for paper in ("A4", "Letter"):
            pdf = page.pdf(format=paper, print_background=True)
            (tmp_path / f"report-{paper}.pdf").write_bytes(pdf)
            assert pages_in(pdf) == 1, paper
