"""Reading a chest X-ray from DICOM: the header checks, the decode and the display transforms.

``imaging.open_xray`` decides what an upload is and calls ``read_dicom`` for DICOM content. The
result is an 8-bit grayscale PIL image, display-ready (bones bright), that goes through the same
``to_model_pixels`` as PNG and JPEG; the header's patient and study fields travel with it in
``image.info["dicom"]``.

Every refusal is a ``DicomRefused`` with a code and the message staff (or a sending PACS's log)
see; the header is checked before any pixel is decoded, so a hip or CT never reaches a decoder.
"""

import io
import re
import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from dispredo_core import image_limits

# The magic word of a DICOM Part 10 file, after its 128-byte preamble.
PREAMBLE_LENGTH = 128
MAGIC = b"DICM"

# CR and DX are radiographs; OT (other) is allowed for secondary captures of them.
ACCEPTED_MODALITIES = {"CR", "DX", "OT"}
# Body Part Examined values that mean a chest (an absent or empty one is accepted too).
CHEST_BODY_PARTS = {"CHEST", "THORAX"}

UNREADABLE_MESSAGE = "This DICOM file is damaged or incomplete, so it cannot be read."
NO_PIXELS_MESSAGE = "This DICOM object holds no image (it has no pixel data)."
MULTI_FRAME_MESSAGE = "This DICOM image has {frames} frames; please send a single chest X-ray image."
COLOUR_MESSAGE = "This DICOM image is in colour ({photometric}); a chest X-ray must be grayscale."
MODALITY_MESSAGE = "This DICOM image's modality is {modality}; only radiographs (CR or DX) are accepted."
BODY_PART_MESSAGE = "This DICOM image is of the {body_part}, not the chest; only chest X-rays are accepted."

# Rows at a time through the display transforms, so that their float copies stay small.
_CHUNK_PIXELS = 1 << 20


class DicomRefused(ValueError):
    """A DICOM object that is not a readable single-frame grayscale chest radiograph."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DicomHeader:
    """The patient and study fields Dispredo keeps from a DICOM header (empty strings when absent)."""

    patient_id: str = ""
    patient_name: str = ""
    patient_sex: str = ""
    patient_birth_date: date | None = None
    patient_age: str = ""
    study_date: date | None = None
    accession_number: str = ""
    study_instance_uid: str = ""
    sop_instance_uid: str = ""
    view_position: str = ""
    modality: str = ""
    transfer_syntax: str = ""


def looks_like_dicom(data):
    """Whether ``data`` carries the DICM magic word after the preamble."""
    return data[PREAMBLE_LENGTH : PREAMBLE_LENGTH + 4] == MAGIC


def parse(data):
    """The dataset in ``data`` (pixels not decoded), or None if it is not DICOM at all.

    A file with the DICM preamble is DICOM whatever follows (damage is then a refusal); one
    without it counts as DICOM only if a forced parse finds an image's SOP class or pixel data.
    """
    preamble = looks_like_dicom(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data), force=not preamble)
            # Reading every element now finds truncation and damage here, not later.
            list(dataset.keys())
            for element in dataset.iterall():
                element.value  # noqa: B018 - converts raw elements, raising on damage
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        if preamble:
            raise DicomRefused("dicom_unreadable", UNREADABLE_MESSAGE) from exc
        return None
    if not preamble and not ("PixelData" in dataset or "SOPClassUID" in dataset):
        return None
    if len(dataset) == 0:
        raise DicomRefused("dicom_unreadable", UNREADABLE_MESSAGE)
    return dataset


def check_header(dataset):
    """Refuse, from the header alone, what is not a single grayscale chest radiograph."""
    if "PixelData" not in dataset:
        raise DicomRefused("dicom_no_pixels", NO_PIXELS_MESSAGE)
    frames = _int(dataset.get("NumberOfFrames")) or 1
    if frames > 1:
        raise DicomRefused("dicom_multi_frame", MULTI_FRAME_MESSAGE.format(frames=frames))
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    samples = _int(dataset.get("SamplesPerPixel")) or 1
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or samples != 1:
        raise DicomRefused("dicom_colour", COLOUR_MESSAGE.format(photometric=photometric or "no photometric interpretation"))
    modality = str(dataset.get("Modality", "")).strip().upper()
    if modality not in ACCEPTED_MODALITIES:
        raise DicomRefused("dicom_modality", MODALITY_MESSAGE.format(modality=modality or "not recorded"))
    body_part = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        raise DicomRefused("dicom_body_part", BODY_PART_MESSAGE.format(body_part=body_part))
    rows, columns = _int(dataset.get("Rows")) or 0, _int(dataset.get("Columns")) or 0
    if rows * columns <= 0:
        raise DicomRefused("dicom_unreadable", UNREADABLE_MESSAGE)
    return photometric


def display_pixels(dataset):
    """The decoded image as display-ready uint8: modality LUT or rescale, then VOI LUT or window
    (else the stored min..max), then inversion so that bones are bright.

    The transforms work on a band of rows at a time (they are per pixel), so a 16-bit plate never
    has a full-size float64 copy: only the decoded array and the 8-bit result are whole."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise anything from RuntimeError to struct.error
        raise DicomRefused("dicom_unreadable", UNREADABLE_MESSAGE) from exc
    if stored.ndim != 2:
        raise DicomRefused("dicom_unreadable", UNREADABLE_MESSAGE)
    rows = max(1, _CHUNK_PIXELS // max(stored.shape[1], 1))
    bands = [slice(top, top + rows) for top in range(0, stored.shape[0], rows)]
    low, high = voi_range(dataset)
    windowed = low is not None
    if not windowed:
        extremes = [(float(v.min()), float(v.max())) for v in (apply_modality_lut(stored[b], dataset) for b in bands)]
        low, high = min(e[0] for e in extremes), max(e[1] for e in extremes)
    scale = 255.0 / (high - low) if high > low else 0.0
    pixels = np.empty(stored.shape, dtype=np.uint8)
    for band in bands:
        values = apply_modality_lut(stored[band], dataset)
        if windowed:
            values = apply_voi_lut(values, dataset, index=0)
        values = np.asarray(values, dtype=np.float64)
        pixels[band] = np.clip(np.round((values - low) * scale), 0, 255).astype(np.uint8)
    if is_inverted(dataset):
        np.subtract(255, pixels, out=pixels)
    return pixels


def voi_range(dataset):
    """The output range of the header's VOI LUT or window (as pydicom computes it), or (None, None)
    when there is neither."""
    voi_sequence = dataset.get("VOILUTSequence")
    if voi_sequence:
        bits = int(voi_sequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None, None
    if dataset.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(dataset.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(dataset.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2 ** int(dataset.BitsStored) - 1)
    else:
        low, high = float(-(2 ** (int(dataset.BitsStored) - 1))), float(2 ** (int(dataset.BitsStored) - 1) - 1)
    slope, intercept = dataset.get("RescaleSlope"), dataset.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return min(low, high), max(low, high)


def is_inverted(dataset):
    """Whether the stored values are a negative (low = white): Presentation LUT Shape INVERSE, or
    MONOCHROME1 without a Presentation LUT Shape. A DX MONOCHROME1 image carries INVERSE for that
    same one inversion, so the two are not applied twice."""
    shape = str(dataset.get("PresentationLUTShape", "") or "").strip().upper()
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return str(dataset.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def header_of(dataset):
    """The ``DicomHeader`` of ``dataset``."""
    view = str(dataset.get("ViewPosition", "") or "").strip().upper()
    return DicomHeader(
        patient_id=_text(dataset.get("PatientID")),
        patient_name=format_name(dataset.get("PatientName")),
        patient_sex=_text(dataset.get("PatientSex")).upper()[:1],
        patient_birth_date=_date(dataset.get("PatientBirthDate")),
        patient_age=_text(dataset.get("PatientAge")),
        study_date=_date(dataset.get("StudyDate")),
        accession_number=_text(dataset.get("AccessionNumber"))[:64],
        study_instance_uid=_text(dataset.get("StudyInstanceUID"))[:64],
        sop_instance_uid=_text(dataset.get("SOPInstanceUID"))[:64],
        view_position=view if view in ("PA", "AP") else "",
        modality=_text(dataset.get("Modality")).upper(),
        transfer_syntax=_transfer_syntax(dataset),
    )


def format_name(value):
    """A DICOM Person Name as "Given Family" when it has components, else as written."""
    if value is None:
        return ""
    text = _text(value)
    if "^" not in text:
        return " ".join(text.split())
    family, _, rest = text.partition("^")
    given = rest.split("^")[0]
    return " ".join(f"{given} {family}".split())


def read_dicom(data):
    """A display-ready 8-bit grayscale PIL image of the DICOM in ``data``, or None if ``data`` is
    not DICOM; raises ``DicomRefused`` for DICOM Dispredo does not take (one too large to decode
    within ``image_limits`` among them, decided from Rows, Columns and Bits Allocated)."""
    dataset = parse(data)
    if dataset is None:
        return None
    check_header(dataset)
    bits = _int(dataset.get("BitsAllocated")) or 16
    too_large = image_limits.too_large_message(int(dataset.Columns), int(dataset.Rows), bits, max(1, bits // 8))
    if too_large:
        raise DicomRefused("dicom_too_large", too_large)
    image = Image.fromarray(display_pixels(dataset), mode="L")
    image.format = "DICOM"
    image.info["dicom"] = header_of(dataset)
    return image


def _transfer_syntax(dataset):
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return uid.name if uid is not None else "Implicit VR Little Endian"


def _text(value):
    """Header text with runs of white space, and NUL (DICOM's padding, which PostgreSQL cannot
    store), as single spaces."""
    return " ".join(str(value).replace("\x00", " ").split()) if value not in (None, "") else ""


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(value):
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", _text(value))
    if not match:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None
