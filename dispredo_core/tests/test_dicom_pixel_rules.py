"""Known DICOM pixels give known display pixels: the stored range, the window after the rescale,
the VOI LUT, polarity (MONOCHROME1 and Presentation LUT Shape) and the shape, on synthetic
datasets of known values and on real files, compared with ``pixel_reference`` (written from
the DICOM standard, not from dicom.py).
"""

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dispredo_core.imaging import open_xray, to_model_pixels
from dispredo_site.testing.malformed_corpus import chest_dicom
from dispredo_site.testing.pixel_reference import dicom_window, min_max, resized

# Gray levels: the reference rounds its own float computation, so a tie may round the other way.
TOLERANCE = 1
# Stored values 100, 116, ... 4180 (a step of 16 is one display gray level), in a 16 x 16 image.
STEPS = np.arange(256).reshape(16, 16)
STORED = (100 + 16 * STEPS).astype(np.uint16)


def synthetic(pixels=STORED, **attributes):
    """A DX chest DICOM (bytes) of ``pixels`` (uint16, 12 bits stored) with ``attributes`` set."""
    dataset = pydicom.dcmread(io.BytesIO(chest_dicom(pixels=pixels)))
    dataset.BitsStored, dataset.HighBit = 13, 12  # room for 4180
    for name, value in attributes.items():
        setattr(dataset, name, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def display(data):
    image = open_xray(data)
    assert image.mode == "L" and image.format == "DICOM"
    return np.asarray(image)


@pytest.mark.parametrize(
    ("photometric", "shape", "inverted"),
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME1", None, True),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", "INVERSE", True),  # a DX negative says so twice; it is inverted once
        ("MONOCHROME1", "IDENTITY", False),
        ("MONOCHROME2", "IDENTITY", False),
    ],
)
def test_without_a_window_the_stored_range_is_stretched_and_negatives_are_inverted(photometric, shape, inverted):
    attributes = {"PhotometricInterpretation": photometric}
    if shape:
        attributes["PresentationLUTShape"] = shape
    expected = 255 - STEPS if inverted else STEPS
    np.testing.assert_array_equal(display(synthetic(**attributes)), expected)


# Values below, across and above the window, for a rescale of 2 x - 1000 and window 3000 / 2001.
WINDOWED = np.linspace(0, 8191, 24 * 16).astype(np.uint16).reshape(24, 16)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_the_window_applies_to_the_rescaled_values(photometric):
    data = synthetic(
        WINDOWED, PhotometricInterpretation=photometric, RescaleSlope=2, RescaleIntercept=-1000,
        WindowCenter=3000, WindowWidth=2001,
    )
    expected = np.round(dicom_window(WINDOWED * 2.0 - 1000, 3000, 2001))
    if photometric == "MONOCHROME1":
        expected = 255 - expected
    pixels = display(data)
    assert np.abs(pixels - expected).max() <= TOLERANCE
    # Clipped on both sides: the window, not the stored range, sets black and white.
    assert (pixels == pixels[0, 0]).sum() > 16 and (pixels == pixels[-1, -1]).sum() > 16


def voi_lut(table, bits):
    item = Dataset()
    item.LUTDescriptor = [len(table), 0, bits]
    item.add_new("LUTData", "OW", np.asarray(table, dtype="<u2").tobytes())
    return Sequence([item])


def test_a_voi_lut_is_applied_rather_than_the_window():
    table = np.arange(8192) ** 2 // 8191  # 0..8191 -> 0..8191, bent
    data = synthetic(STORED, VOILUTSequence=voi_lut(table, 13), WindowCenter=1000, WindowWidth=10)
    expected = np.round(table[STORED] * 255 / 8191)
    assert np.abs(display(data) - expected).max() <= TOLERANCE


def test_a_non_square_dicom_keeps_its_rows_and_columns():
    stored = STORED.reshape(8, 32)
    image = open_xray(synthetic(stored))
    assert image.size == (32, 8)  # Columns wide, Rows high
    np.testing.assert_array_equal(np.asarray(image), STEPS.reshape(8, 32))


@pytest.mark.parametrize("size", [64, 128])
def test_dicom_goes_through_the_same_resize_as_png(size):
    stored = np.kron(STORED, np.ones((20, 13), dtype=np.uint16))  # 320 x 208
    pixels = to_model_pixels(open_xray(synthetic(stored)), size)
    assert pixels.dtype == np.uint8 and pixels.shape == (size, size)
    assert np.abs(pixels - resized(np.kron(STEPS, np.ones((20, 13))), size)).max() <= TOLERANCE


def real(dicom_sample, name):
    """The bytes of a real file and its stored pixels (pydicom's decode, no LUT applied)."""
    data = (dicom_sample / name).read_bytes()
    return data, pydicom.dcmread(io.BytesIO(data)).pixel_array


def test_a_real_windowed_monochrome1_inverse_file_is_windowed_then_inverted_once(dicom_sample):
    """The Fuji thorax: 8 bits stored, window 128 / 256, MONOCHROME1 with Presentation LUT Shape INVERSE."""
    data, stored = real(dicom_sample, "fuji_dx_thorax_mono1_small.dcm")
    expected = 255 - np.round(dicom_window(stored, 128, 256))
    pixels = display(data)
    assert pixels.shape == stored.shape == (169, 211)
    assert np.abs(pixels - expected).max() <= TOLERANCE
    assert np.abs(to_model_pixels(open_xray(data), 64) - resized(expected, 64)).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("name", "inverted"),
    [("nih_dx_secondary_capture.dcm", False), ("siim_cr_mono2_jpeg.dcm", False), ("siim_cr_mono1_retagged.dcm", True)],
)
def test_real_files_without_a_window_are_stretched_from_their_stored_range(dicom_sample, name, inverted):
    data, stored = real(dicom_sample, name)
    expected = np.round(min_max(stored))
    if inverted:
        expected = 255 - expected
    assert np.abs(display(data) - expected).max() <= TOLERANCE
