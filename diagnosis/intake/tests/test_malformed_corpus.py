"""Every file of the malformed-file corpus through the upload page, with its stated outcome."""

import re

import pytest
from django.urls import reverse
from PIL import Image

from diagnosis.records.models import AuditEvent, XRay, XRayStatus
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.malformed_corpus import cases, post_upload

CASES = cases()


@pytest.fixture(scope="module")
def xray_256(sample_images):
    """A real 256 px NIH X-ray, the base of the corpus's image files."""
    with Image.open(sample_images["px_256"]) as image:
        return image.convert("L")


def test_the_corpus_has_at_least_30_files_with_distinct_labels():
    assert len(CASES) >= 30
    assert len({case.label for case in CASES}) == len(CASES)
    assert sum(case.refused is None for case in CASES) >= 10 and sum(case.refused is not None for case in CASES) >= 20


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning", "ignore:Corrupt EXIF data")
@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_each_corpus_file_has_its_outcome(staff_client, patient, tiny_model, xray_256, private_media, settings, case):
    settings.DISPREDO_MAX_IMAGE_BYTES = 48 * 1024 * 1024
    content = case.build(xray_256)

    response = post_upload(staff_client, patient, case.file_name, content)

    if case.refused is not None:
        assert response.status_code == 200, case.why
        assert response.context["form"].errors["image"] == [case.refused]
        assert not XRay.objects.exists() and stored_files(private_media) == []
        # The refusal alone is in the audit trail: by whom, for which patient, and why.
        [event] = AuditEvent.objects.all()
        assert (event.action, event.object_type, event.object_id, event.patient) == ("refuse", "xray", 0, patient)
        assert event.detail.startswith("the upload page: ") and case.refused[:100] in event.detail
        return
    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert response["Location"] == xray.get_absolute_url()
    assert xray.status == XRayStatus.DONE and xray.predictions.count() == 14
    # Stored exactly as received, under a generated name with the type's extension.
    files = stored_files(private_media)
    assert len(files) == 1 and files[0].read_bytes() == content
    assert re.fullmatch(r"[0-9a-f]{32}" + re.escape(case.suffix), files[0].name), files[0].name
    expected_name = case.display_name if case.display_name is not None else case.file_name.decode()
    assert xray.original_name == expected_name
    if case.size is not None:
        assert (xray.width, xray.height) == case.size
    # Served only as the image: its own type (DICOM rendered to PNG), never sniffed.
    image = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert image.status_code == 200
    assert image["Content-Type"] == case.served
    assert image["X-Content-Type-Options"] == "nosniff"
    if case.suffix == ".dcm":
        assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
