"""The clinic's signed-off readings as training data in the NIH ChestX-ray14 layout.

``export_readings`` writes a folder that ``manage.py preprocess`` takes as it takes the NIH
download::

    Data_Entry_2017.csv        the NIH columns and header; one row per image
    images_001/images/*.png    8-bit grayscale, long side at most 1024 px, no metadata chunks
    dispredo_export.json       format_version, source "dispredo-readings", created_at, since, counts

Each X-ray's label is the newest signed-off version of its reading (an amendment supersedes what it
amends; drafts are never exported). Patients are numbered by their ``ExportPseudonym``, drawn at
random once and kept, so a patient has the same number in every export; image names are
``<pseudonym>_<follow-up, 3 digits>.png``. Nothing in the folder comes from a name, record number,
date of birth (the age in whole years only), file name, accession number, UID or clinical note.
Pixels are re-encoded from the decoded image, so no header of the stored file travels with them;
text burnt into the pixels themselves is not removed. No TensorFlow here: it runs in the web side's
environment.
"""

import csv
import io
import json
import os
import secrets
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from PIL import Image
from tqdm import tqdm

from diagnosis.readings.models import ExportPseudonym, Mark, Reading
from diagnosis.records import audit
from diagnosis.records.models import ViewPosition
from dispredo_core.findings import FINDINGS, NO_FINDING
from dispredo_core.imaging import InvalidImage, open_xray, to_grayscale

from .preprocess import make_sibling
from .sources import EXPORT_MANIFEST_FILE, READINGS_KIND

FORMAT_VERSION = 1
LABEL_FILE = "Data_Entry_2017.csv"
IMAGE_FOLDER = Path("images_001") / "images"
# NIH's header, field by field: its bracketed names hold a comma, so it has 11 fields, unquoted.
HEADER = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
MAX_SIDE = 1024  # the NIH originals are 1024 x 1024
# Above every NIH Patient ID (under 10**5), so an export never collides with the NIH data.
PSEUDONYM_LOW, PSEUDONYM_HIGH = 10**11, 10**12
PSEUDONYM_TRIES = 100

SKIP_NOT_ASSESSABLE = "a finding marked not assessable"
SKIP_UNMARKED = "a finding not marked"
SKIP_UNREADABLE = "the stored image cannot be read"


class ExportError(Exception):
    """Nothing was exported; the message says what to do."""


@dataclass
class ExportResult:
    out: Path
    images: int
    patients: int
    skipped: dict  # reason -> number of X-rays
    manifest: dict


def current_signed_readings(since=None):
    """The newest signed-off version of each X-ray's reading, signed off on or after the date ``since``."""
    newer = Reading.objects.signed().filter(xray=OuterRef("xray"), version__gt=OuterRef("version"))
    readings = Reading.objects.signed().exclude(Exists(newer))
    if since is not None:
        readings = readings.filter(signed_at__date__gte=since)
    return readings.select_related("xray", "xray__patient")


def unlabelable(reading):
    """Why ``reading`` cannot be written as an NIH label, or None when it can."""
    marks = [reading.marks.get(name) for name in FINDINGS]
    if Mark.NOT_ASSESSABLE in marks:
        return SKIP_NOT_ASSESSABLE
    if any(mark not in (Mark.PRESENT, Mark.ABSENT) for mark in marks):
        return SKIP_UNMARKED
    return None


def pseudonym_for(patient):
    """The patient's export number: the one kept from an earlier export, or a new random one."""
    kept = ExportPseudonym.objects.filter(patient=patient).values_list("number", flat=True).first()
    if kept is not None:
        return kept
    for _ in range(PSEUDONYM_TRIES):
        number = PSEUDONYM_LOW + secrets.randbelow(PSEUDONYM_HIGH - PSEUDONYM_LOW)
        if ExportPseudonym.objects.filter(number=number).exists():
            continue  # drawn before for another patient: draw again
        try:
            with transaction.atomic():
                return ExportPseudonym.objects.create(patient=patient, number=number).number
        except IntegrityError:  # another export numbered this patient, or took the number, meanwhile
            kept = ExportPseudonym.objects.filter(patient=patient).values_list("number", flat=True).first()
            if kept is not None:
                return kept
    raise ExportError(f"No free export number found in {PSEUDONYM_TRIES} draws; run the export again.")


def age_in_years(date_of_birth, on):
    """Whole years from ``date_of_birth`` to the date ``on``; None when unknown or impossible."""
    if date_of_birth is None or on < date_of_birth:
        return None
    return on.year - date_of_birth.year - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))


def study_day(xray):
    """The study date of the header, else the day of the upload."""
    return xray.study_date or timezone.localdate(xray.uploaded_at)


def export_png(data):
    """PNG bytes of the stored file ``data`` re-encoded: 8-bit grayscale, long side at most ``MAX_SIDE``,
    decoded by the upload's own path (DICOM included) and saved from bare pixels, so no chunk but
    the image's own is written."""
    image = to_grayscale(open_xray(data))
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        size = tuple(max(1, round(side * scale)) for side in image.size)
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def label_row(name, follow_up, pseudonym, reading):
    xray, patient = reading.xray, reading.xray.patient
    age = age_in_years(patient.date_of_birth, study_day(xray))
    present = reading.present_findings()
    return [
        name,
        "|".join(present) if present else NO_FINDING,
        str(follow_up),
        str(pseudonym),
        "" if age is None else str(age),
        patient.sex if patient.sex in ("M", "F") else "",
        xray.view_position if xray.view_position in ViewPosition.values else "",
        str(xray.width),
        str(xray.height),
        "",
        "",
    ]


def export_readings(out, since=None, user=None, progress=False):
    """Write the signed-off readings (signed on or after the date ``since``) to the new folder
    ``out``; returns an ``ExportResult``. Every exported X-ray gets an audit event by ``user`` (None:
    whoever ran the command). Raises ``ExportError``; nothing is written then."""
    out = Path(out).expanduser().resolve()
    _check_out(out)
    readings = list(current_signed_readings(since))
    since_text = f" signed off on or after {since.isoformat()}" if since else ""
    if not readings:
        raise ExportError(
            f"There are no signed-off readings{since_text} to export; nothing was written. "
            "Sign readings off first" + (", or choose an earlier --since." if since else ".")
        )
    skipped = Counter()
    by_patient = {}
    for reading in readings:
        reason = unlabelable(reading)
        if reason:
            skipped[reason] += 1
        else:
            by_patient.setdefault(reading.xray.patient, []).append(reading)
    if not by_patient:
        raise ExportError(
            f"None of the {len(readings)} signed-off readings{since_text} can be written as NIH labels "
            f"({_reasons(skipped)}); nothing was written."
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_sibling(out, "partial")
    placed = False
    try:
        pseudonyms = {patient: pseudonym_for(patient) for patient in by_patient}
        rows, exported = _write_images(staging, by_patient, pseudonyms, skipped, progress)
        if not rows:
            raise ExportError(f"None of the X-rays could be exported ({_reasons(skipped)}); nothing was written.")
        _write_label_file(staging / LABEL_FILE, sorted(rows))
        manifest = {
            "format_version": FORMAT_VERSION,
            "source": READINGS_KIND,
            "created_at": timezone.now().isoformat(timespec="seconds"),
            "since": since.isoformat() if since else None,
            "counts": {
                "images": len(rows),
                "patients": len({row[3] for row in rows}),
                "skipped": dict(sorted(skipped.items())),
            },
        }
        (staging / EXPORT_MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        with transaction.atomic():
            for xray, name in exported:
                audit.record_export(user, xray, name)
            os.replace(staging, out)  # last: the audit rows stand only if the folder is in place
            placed = True
    except BaseException:
        shutil.rmtree(out if placed else staging, ignore_errors=True)
        raise
    counts = manifest["counts"]
    return ExportResult(out, counts["images"], counts["patients"], counts["skipped"], manifest)


def _check_out(out):
    if out.exists() and not out.is_dir():
        raise ExportError(f"The output {out} is a file; choose a new folder for --out.")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(
            f"The output folder {out} is not empty; choose a new or empty folder for --out "
            "(an export is never merged into an earlier one)."
        )


def _write_images(staging, by_patient, pseudonyms, skipped, progress):
    """Each patient's X-rays in date order, numbered from 0 as they are written; returns the label
    rows and ``(xray, image name)`` of each image written. Unreadable files are skipped, counted."""
    folder = staging / IMAGE_FOLDER
    folder.mkdir(parents=True)
    rows, exported = [], []
    total = sum(len(readings) for readings in by_patient.values())
    with tqdm(total=total, unit="img", desc="export", disable=not progress, file=sys.stderr) as bar:
        for patient in sorted(by_patient, key=pseudonyms.get):
            pseudonym = pseudonyms[patient]
            order = sorted(by_patient[patient], key=lambda r: (study_day(r.xray), r.xray.uploaded_at, r.xray.pk))
            follow_up = 0
            for reading in order:
                try:
                    with reading.xray.image.open("rb") as handle:
                        png = export_png(handle.read())
                except (OSError, InvalidImage):
                    skipped[SKIP_UNREADABLE] += 1
                else:
                    name = f"{pseudonym}_{follow_up:03d}.png"
                    (folder / name).write_bytes(png)
                    rows.append(label_row(name, follow_up, pseudonym, reading))
                    exported.append((reading.xray, name))
                    follow_up += 1
                bar.update()
    return rows, exported


def _write_label_file(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


def _reasons(skipped):
    return "; ".join(f"{count} with {reason}" for reason, count in sorted(skipped.items()))
