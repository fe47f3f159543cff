"""DICOM display transforms on real files: agreement with an independent rendering, and polarity."""

import numpy as np
import pydicom
import pytest
from PIL import Image

from dispredo_core.dicom import header_of
from dispredo_core.imaging import open_xray, to_model_pixels

# NIH images inside DICOM: the rendering must match a plain min-max of the stored pixels.
NIH_FILES = ["siim_cr_mono2_jpeg.dcm", "rsna_cr_pa_normal.dcm", "rsna_cr_pa_normal_2.dcm", "nih_dx_secondary_capture.dcm"]
# Frontal chests stored as negatives (MONOCHROME1, some with Presentation LUT Shape INVERSE).
FRONTAL_NEGATIVES = [
    "nema_rg1_cr_chest_j2k_lossy.dcm",
    "nema_rg1_cr_chest_jpegls.dcm",
    "canon_dx_chest_presentation_inverse.dcm",
]


def reference_rendering(path):
    """Independent of dicom.py: pydicom's raw pixel_array, min-max to 0..255, inverted for MONOCHROME1."""
    dataset = pydicom.dcmread(path)
    raw = dataset.pixel_array.astype(np.float64)
    scaled = (raw - raw.min()) / (raw.max() - raw.min()) * 255
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        scaled = 255 - scaled
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def correlation(a, b):
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.mark.parametrize("name", NIH_FILES)
def test_nih_images_in_dicom_render_like_an_independent_reference(dicom_sample, name):
    path = dicom_sample / name
    ours = to_model_pixels(open_xray(path.read_bytes()), 256)
    reference = to_model_pixels(reference_rendering(path), 256)
    assert correlation(ours, reference) > 0.99


def central_and_lateral_means(pixels):
    """Mean of the central vertical band (spine, mediastinum) and of the two lateral lung bands."""
    width = pixels.shape[1]
    centre = pixels[:, int(width * 0.45) : int(width * 0.55)].mean()
    lungs = np.concatenate([pixels[:, int(width * 0.2) : int(width * 0.3)], pixels[:, int(width * 0.7) : int(width * 0.8)]], axis=1)
    return centre, lungs.mean()


@pytest.mark.parametrize("name", FRONTAL_NEGATIVES)
def test_monochrome1_and_inverse_frontal_chests_come_out_with_bright_bones(dicom_sample, name):
    pixels = to_model_pixels(open_xray((dicom_sample / name).read_bytes()), 256).astype(np.float64)
    centre, lungs = central_and_lateral_means(pixels)
    assert centre > lungs + 20


def test_a_lateral_monochrome1_inverse_thorax_has_dark_air_and_bright_spine(dicom_sample):
    # A dog's lateral thorax (MONOCHROME1 with Presentation LUT Shape INVERSE: inverted once, not twice).
    pixels = np.asarray(open_xray((dicom_sample / "fuji_dx_thorax_mono1_small.dcm").read_bytes()), dtype=np.float64)
    air = np.median(pixels[:8, : pixels.shape[1] // 3])  # above the back, outside the body
    assert air < pixels.mean() - 30
    assert np.percentile(pixels, 99) > pixels.mean() + 80


def test_a_retagged_monochrome1_copy_renders_as_the_negative_of_its_original(dicom_sample):
    # The same stored pixels tagged MONOCHROME1: honouring the tag gives the negative, as its README says.
    positive = np.asarray(open_xray((dicom_sample / "siim_cr_mono2_jpeg.dcm").read_bytes()), dtype=np.int16)
    negative = np.asarray(open_xray((dicom_sample / "siim_cr_mono1_retagged.dcm").read_bytes()), dtype=np.int16)
    assert np.abs(positive + negative - 255).max() <= 1


def test_the_header_gives_patient_and_study(dicom_sample):
    header = header_of(pydicom.dcmread(dicom_sample / "nema_rg1_cr_chest_jpegls.dcm", stop_before_pixels=True))
    assert header.patient_id == "9RG1"
    assert header.patient_name == "RG1 CompressedSamples"
    assert header.patient_sex == "F"
    assert header.patient_birth_date.isoformat() == "1940-03-05"
    assert header.study_date.isoformat() == "2004-08-26"
    assert header.view_position == "PA"
    assert header.transfer_syntax == "JPEG-LS Lossy (Near-Lossless) Image Compression"


def test_dicom_without_a_preamble_is_recognised_by_parsing(dicom_sample):
    data = (dicom_sample / "nih_dx_secondary_capture.dcm").read_bytes()[132:]  # no preamble, no DICM word
    assert open_xray(data).format == "DICOM"


def test_bytes_that_are_neither_image_nor_dicom_are_refused():
    from dispredo_core.imaging import InvalidImage, RefusedDicom

    with pytest.raises(InvalidImage) as refused:
        open_xray(b"%PDF-1.7 not an x-ray" * 20)
    assert not isinstance(refused.value, RefusedDicom)



@pytest.mark.parametrize("syntax", ["ExplicitVRLittleEndian", "DeflatedExplicitVRLittleEndian", "RLELossless"])
def test_explicit_deflated_and_rle_files_render_as_the_original(dicom_sample, syntax):
    """The sample's uncompressed file (implicit VR) re-encoded by pydicom in the other lossless syntaxes."""
    import io

    from pydicom import uid

    path = dicom_sample / "nih_dx_secondary_capture.dcm"
    dataset = pydicom.dcmread(path)
    assert not dataset.file_meta.TransferSyntaxUID.is_compressed
    if syntax == "RLELossless":
        dataset.compress(uid.RLELossless)
    else:
        dataset.file_meta.TransferSyntaxUID = getattr(uid, syntax)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == getattr(uid, syntax)
    np.testing.assert_array_equal(np.asarray(open_xray(data)), np.asarray(open_xray(path.read_bytes())))
