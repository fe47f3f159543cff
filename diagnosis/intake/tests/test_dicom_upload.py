"""DICOM through the upload page: real chest files stored and scored, the rest refused with their messages."""


import pydicom
import pytest
from django.urls import reverse
from pydicom.data import get_testdata_file

from diagnosis.intake.dicom_records import AGE_NOTE, DUPLICATE_MESSAGE, WRONG_PATIENT_MESSAGE
from diagnosis.intake.content import INVALID_IMAGE_MESSAGE
from diagnosis.records.models import Patient, Prediction, XRay, XRayStatus
from dispredo_core.dicom import (
    BODY_PART_MESSAGE,
    COLOUR_MESSAGE,
    MODALITY_MESSAGE,
    MULTI_FRAME_MESSAGE,
    NO_PIXELS_MESSAGE,
    UNREADABLE_MESSAGE,
)
from dispredo_site.testing.helpers import stored_files, upload_file

# Real chest files the input guard accepts as rendered.
CHEST_FILES = [
    "siim_cr_mono2_jpeg.dcm",
    "rsna_cr_pa_normal.dcm",
    "rsna_cr_pa_normal_2.dcm",
    "nih_dx_secondary_capture.dcm",
    "nema_rg1_cr_chest_j2k_lossy.dcm",
    "nema_rg1_cr_chest_jpegls.dcm",
    "canon_dx_chest_presentation_inverse.dcm",
]
# Real chest files the guard finds unusual, rightly: a dog's lateral thorax, and a positive image
# re-tagged MONOCHROME1 (a negative as tagged). Staff can score them anyway.
UNUSUAL_CHEST_FILES = ["fuji_dx_thorax_mono1_small.dcm", "siim_cr_mono1_retagged.dcm"]


@pytest.mark.django_db
def test_the_upload_page_offers_dicom_files(staff_client):
    assert INVALID_IMAGE_MESSAGE == "Please upload a chest X-ray image (PNG, JPEG or DICOM)."
    html = staff_client.get(reverse("diagnosis:upload")).content.decode()
    # The browser's file chooser shows only what "accept" names.
    assert 'accept="image/png,image/jpeg,application/dicom,.dcm"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("name", CHEST_FILES)
def test_a_real_chest_dicom_is_stored_as_uploaded_and_scored(staff_client, staff, default_model, dicom_sample, private_media, name):
    path = dicom_sample / name
    header = pydicom.dcmread(path, stop_before_pixels=True)

    response = upload_file(staff_client, path)  # no patient chosen: the header names or creates one

    xray = XRay.objects.get()
    assert response.redirect_chain[-1][0] == reverse("diagnosis:xray_detail", args=[xray.pk])
    assert xray.status == XRayStatus.DONE and not xray.guard_overridden
    assert Prediction.objects.filter(xray=xray).count() == 14
    files = stored_files(private_media)
    assert len(files) == 1 and files[0].suffix == ".dcm" and files[0].read_bytes() == path.read_bytes()
    assert xray.sop_instance_uid == header.SOPInstanceUID
    assert xray.study_instance_uid == header.StudyInstanceUID
    assert xray.view_position == (header.get("ViewPosition") or "")
    assert xray.patient.mrn == str(header.PatientID).strip()  # as given: a DICOM Patient ID is case-sensitive
    assert xray.source == "page"
    # The image view renders it to PNG; the .dcm never goes to the browser.
    image = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


@pytest.mark.django_db
@pytest.mark.parametrize("name", UNUSUAL_CHEST_FILES)
def test_an_unusual_chest_dicom_is_refused_by_the_guard_and_scored_when_staff_insist(staff_client, default_model, dicom_sample, name):
    path = dicom_sample / name
    refused = upload_file(staff_client, path)
    assert refused.context["form"].errors["image"] == ["This does not look like a frontal chest X-ray, so it was not scored."]
    assert not XRay.objects.exists()

    upload_file(staff_client, path, score_anyway="on")
    xray = XRay.objects.get()
    assert xray.guard_overridden and xray.status == XRayStatus.DONE


@pytest.mark.django_db
def test_the_header_fills_the_new_patient(staff_client, default_model, dicom_sample):
    upload_file(staff_client, dicom_sample / "nema_rg1_cr_chest_jpegls.dcm")
    patient = Patient.objects.get()
    assert (patient.mrn, patient.name, patient.sex, patient.date_of_birth.isoformat()) == ("9RG1", "RG1 CompressedSamples", "F", "1940-03-05")
    xray = XRay.objects.get()
    assert xray.study_date.isoformat() == "2004-08-26" and xray.accession_number == "exam Number"


@pytest.mark.django_db
def test_nul_characters_in_the_header_are_read_as_spaces(staff_client, default_model, dicom_sample, tmp_path):
    # PostgreSQL cannot store NUL in text (SQLite can): the header's text is read without them.
    dataset = pydicom.dcmread(dicom_sample / "nema_rg1_cr_chest_jpegls.dcm")
    dataset.PatientID, dataset.PatientName, dataset.AccessionNumber = "9RG\x001", "Compressed\x00Samples^RG1", "exam\x00Number"
    path = tmp_path / "nul.dcm"
    dataset.save_as(path)
    response = upload_file(staff_client, path)
    assert response.status_code == 200
    patient = Patient.objects.get()
    assert (patient.mrn, patient.name) == ("9RG 1", "RG1 Compressed Samples")
    assert XRay.objects.get().accession_number == "exam Number"


@pytest.mark.django_db
def test_only_an_age_goes_to_the_notes(staff_client, default_model, dicom_sample):
    upload_file(staff_client, dicom_sample / "rsna_cr_pa_normal.dcm")
    patient = Patient.objects.get()
    assert patient.date_of_birth is None and patient.sex == "F"
    assert patient.notes == AGE_NOTE.format(age="54 years", study="1901-01-01")


@pytest.mark.django_db
def test_the_header_finds_an_existing_patient_by_record_number(staff_client, staff, default_model, dicom_sample):
    known = Patient.objects.create(mrn="9RG1", name="Known Patient", created_by=staff)
    upload_file(staff_client, dicom_sample / "nema_rg1_cr_chest_j2k_lossy.dcm")
    assert XRay.objects.get().patient == known and Patient.objects.count() == 1


@pytest.mark.django_db
def test_a_header_naming_another_patient_is_refused(staff_client, patient, default_model, dicom_sample, private_media):
    response = upload_file(staff_client, dicom_sample / "nema_rg1_cr_chest_j2k_lossy.dcm", patient=patient)
    assert response.context["form"].errors["patient"] == [WRONG_PATIENT_MESSAGE.format(header_id="9RG1", mrn="MRN001")]
    assert "9RG1" in WRONG_PATIENT_MESSAGE.format(header_id="9RG1", mrn="MRN001")
    assert not XRay.objects.exists() and stored_files(private_media) == []


@pytest.mark.django_db
def test_the_same_sop_instance_twice_is_refused_naming_the_stored_xray(staff_client, default_model, dicom_sample):
    path = dicom_sample / "siim_cr_mono2_jpeg.dcm"
    upload_file(staff_client, path)
    first = XRay.objects.get()
    response = upload_file(staff_client, path)
    assert response.context["form"].errors["image"] == [
        DUPLICATE_MESSAGE.format(uid=first.sop_instance_uid, pk=first.pk, patient=first.patient, url=f"/xrays/{first.pk}/")
    ]
    assert XRay.objects.count() == 1


def _refusal_cases(dicom_sample):
    return [
        (dicom_sample / "nema_rg2_cr_hip_jpeg_lossy.dcm", BODY_PART_MESSAGE.format(body_part="HIP")),
        (get_testdata_file("CT_small.dcm"), MODALITY_MESSAGE.format(modality="CT")),
        (get_testdata_file("MR_small.dcm"), MODALITY_MESSAGE.format(modality="MR")),
        (get_testdata_file("SC_rgb_rle.dcm"), COLOUR_MESSAGE.format(photometric="RGB")),
        (get_testdata_file("SC_rgb_rle_2frame.dcm"), MULTI_FRAME_MESSAGE.format(frames=2)),
    ]


@pytest.mark.django_db
def test_non_chest_dicom_is_refused_with_its_message_and_nothing_stored(staff_client, patient, default_model, dicom_sample, private_media, tmp_path):
    for path, message in _refusal_cases(dicom_sample):
        from pathlib import Path

        response = upload_file(staff_client, Path(path))
        assert response.context["form"].errors["image"] == [message], path
    assert not XRay.objects.exists() and Patient.objects.count() == 1
    assert stored_files(private_media) == []


def _malformed(dicom_sample, tmp_path):
    """Damaged DICOM made from real files: truncated, a preamble alone, short pixel data, broken J2K."""
    chest = (dicom_sample / "nih_dx_secondary_capture.dcm").read_bytes()
    cases = {
        "truncated.dcm": chest[: len(chest) // 3],
        "preamble_only.dcm": b"\0" * 128 + b"DICM",
        "broken_j2k.dcm": (dicom_sample / "broken_j2k_codestream_chest.dcm").read_bytes(),
    }
    # Pixel data shorter than Rows x Columns declare, with a consistent element length.
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.Modality = "DX"
    dataset.PixelData = dataset.PixelData[: len(dataset.PixelData) // 2]
    short = tmp_path / "short_pixels.dcm"
    dataset.save_as(short)
    cases["short_pixels.dcm"] = short.read_bytes()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        yield path


@pytest.mark.django_db
def test_malformed_dicom_is_refused_cleanly(staff_client, patient, default_model, dicom_sample, private_media, tmp_path):
    for path in _malformed(dicom_sample, tmp_path):
        response = upload_file(staff_client, path, patient=patient)
        assert response.status_code == 200
        assert response.context["form"].errors["image"] == [UNREADABLE_MESSAGE], path.name
    assert not XRay.objects.exists()
    assert stored_files(private_media) == []


@pytest.mark.django_db
def test_an_object_without_pixel_data_is_refused(staff_client, patient, default_model, tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del dataset.PixelData
    path = tmp_path / "no_pixels.dcm"
    dataset.save_as(path)
    response = upload_file(staff_client, path, patient=patient)
    assert response.context["form"].errors["image"] == [NO_PIXELS_MESSAGE]


@pytest.mark.django_db
def test_the_admin_shows_the_dicom_study_and_a_png_rendering(admin_client_, staff_client, default_model, dicom_sample):
    upload_file(staff_client, dicom_sample / "nema_rg1_cr_chest_j2k_lossy.dcm")
    xray = XRay.objects.get()
    page = admin_client_.get(reverse("admin:diagnosis_xray_change", args=[xray.pk])).content.decode()
    assert xray.sop_instance_uid in page and "exam Number" in page
    assert reverse("diagnosis:xray_image", args=[xray.pk]) in page
    image = admin_client_.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert image["Content-Type"] == "image/png" and image.content.startswith(b"\x89PNG")
