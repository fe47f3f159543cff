"""manage.py export_readings: signed-off readings as an NIH-layout folder, pseudonymised."""

import csv
import datetime
import getpass
import json
import os
import struct
import subprocess
import sys
import zlib
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from diagnosis.readings.models import ExportPseudonym
from diagnosis.records.models import AuditAction, AuditEvent
from dispredo_core.imaging import open_xray, to_grayscale
from mltrain import readings_export
from mltrain.readings_export import PSEUDONYM_HIGH, PSEUDONYM_LOW, ExportError, export_readings

from .clinic import at, dicom_file, draft, patient, sign, store
from mltrain.tests.nih_layout import LABEL_FILE, SAMPLE

DICOM = "nema_rg1_cr_chest_jpegls.dcm"  # 1841 x 1955, study date 2004-08-26, its own patient tags
QUIXOTE_DOB = datetime.date(1937, 8, 19)
WINTERGREEN_DOB = datetime.date(1990, 12, 31)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def clinic(db, media, nih_sample):
    """Three patients with distinctive identifiers and their X-rays, read and signed off in 2026:

    Quixotefield: a DICOM study of 2004 (Nodule, Mass), a 1024 px PNG (Cardiomegaly, Effusion), a
    256 px PNG read as Infiltration then amended to No Finding (and a draft v3 begun); Wintergreen:
    a 64 px PNG (Pneumonia) and one with a draft only; Thistlewaite: one with Hernia not assessable
    and one with nothing present."""
    gray_1024, px_256 = nih_sample.pick(1024, 1, mode="L")[0], nih_sample.pick(256, 1)[0]
    px_64 = nih_sample.pick(64, 3)
    quixote = patient("QX-5550172", "Zebulon Quixotefield", "M", QUIXOTE_DOB, notes="Quixotefield: penicillin allergy")
    wintergreen = patient("WG-8841230", "Philippa Wintergreen-Okonkwo", "F", WINTERGREEN_DOB)
    thistle = patient("RT-3306619", "Rosamund Thistlewaite", "O")
    xrays = {
        "quixote_1024": store(
            quixote, nih_sample.paths[gray_1024], uploaded_at=at("2026-03-10"), view_position="PA",
            clinical_note="Quixotefield coughing since March",
        ),
        "quixote_256": store(quixote, nih_sample.paths[px_256], uploaded_at=at("2026-05-02"), view_position="AP"),
        "quixote_dicom": store(quixote, dicom_file(DICOM), uploaded_at=at("2026-06-01")),
        "wintergreen": store(wintergreen, nih_sample.paths[px_64[0]], uploaded_at=at("2026-04-01")),
        "wintergreen_draft": store(wintergreen, nih_sample.paths[px_64[1]], uploaded_at=at("2026-04-05")),
        "thistle_hernia": store(thistle, nih_sample.paths[px_64[2]], uploaded_at=at("2026-04-10")),
        "thistle": store(thistle, nih_sample.paths[px_256], uploaded_at=at("2026-04-11")),
    }
    sign(xrays["quixote_1024"], present=("Cardiomegaly", "Effusion"), signed_at=at("2026-03-11"),
         impression="Quixotefield impression: effusion")
    sign(xrays["quixote_256"], present=("Infiltration",), signed_at=at("2026-05-03"))
    sign(xrays["quixote_256"], version=2, signed_at=at("2026-05-20"), reason="Second look: clear")
    draft(xrays["quixote_256"], present=("Hernia",), version=3)
    sign(xrays["quixote_dicom"], present=("Mass", "Nodule"), signed_at=at("2026-06-02"))
    sign(xrays["wintergreen"], present=("Pneumonia",), signed_at=at("2026-04-02"))
    draft(xrays["wintergreen_draft"], present=("Edema",))
    sign(xrays["thistle_hernia"], not_assessable=("Hernia",), signed_at=at("2026-04-12"))
    sign(xrays["thistle"], signed_at=at("2026-04-12"))
    return {"patients": (quixote, wintergreen, thistle), "xrays": xrays}


def read_rows(out):
    with open(out / LABEL_FILE, newline="") as handle:
        return list(csv.reader(handle))


def pseudonym(patient):
    return ExportPseudonym.objects.get(patient=patient).number


def files_of(out):
    return sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())


def png_chunks(data):
    """``[(type, data)]`` of a PNG file's chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at_byte = [], 8
    while at_byte < len(data):
        (length,) = struct.unpack(">I", data[at_byte : at_byte + 4])
        chunks.append((data[at_byte + 4 : at_byte + 8].decode("ascii"), data[at_byte + 8 : at_byte + 8 + length]))
        at_byte += 12 + length
    return chunks


def test_it_writes_the_nih_header_and_one_row_per_exported_xray(clinic, tmp_path):
    quixote, wintergreen, thistle = clinic["patients"]
    out = tmp_path / "export"

    result = export_readings(out)

    with open(SAMPLE / LABEL_FILE, "rb") as handle:
        nih_header = handle.readline()
    assert (out / LABEL_FILE).read_bytes().split(b"\n")[0] + b"\n" == nih_header
    q, w, t = pseudonym(quixote), pseudonym(wintergreen), pseudonym(thistle)
    expected = sorted(
        [
            [f"{q}_000.png", "Nodule|Mass", "0", str(q), "67", "M", "", "1841", "1955", "", ""],
            [f"{q}_001.png", "Effusion|Cardiomegaly", "1", str(q), "88", "M", "PA", "1024", "1024", "", ""],
            [f"{q}_002.png", "No Finding", "2", str(q), "88", "M", "AP", "256", "256", "", ""],
            [f"{w}_000.png", "Pneumonia", "0", str(w), "35", "F", "", "64", "64", "", ""],
            [f"{t}_000.png", "No Finding", "0", str(t), "", "", "", "256", "256", "", ""],
        ]
    )
    assert read_rows(out)[1:] == expected
    assert (result.images, result.patients) == (5, 3)
    assert result.skipped == {"a finding marked not assessable": 1}
    assert files_of(out) == sorted(
        [LABEL_FILE, "dispredo_export.json"] + [f"images_001/images/{row[0]}" for row in expected]
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "media"]  # no temporary folder left


def test_images_are_bare_8_bit_grayscale_pngs_capped_at_1024(clinic, tmp_path, nih_sample):
    quixote, wintergreen, _thistle = clinic["patients"]
    out = tmp_path / "export"
    export_readings(out)
    images = out / "images_001" / "images"
    q, w = pseudonym(quixote), pseudonym(wintergreen)

    sizes = {}
    for path in images.iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "L", path.name
            sizes[path.name] = image.size
        assert {kind for kind, _data in png_chunks(path.read_bytes())} == {"IHDR", "IDAT", "IEND"}, path.name
    assert sizes[f"{q}_000.png"] == (964, 1024)  # the DICOM's 1841 x 1955, long side brought to 1024
    assert sizes[f"{q}_001.png"] == (1024, 1024) and sizes[f"{w}_000.png"] == (64, 64)
    # A PNG upload's pixels are kept as decoded; the DICOM's are its display rendering, resized.
    stored = clinic["xrays"]["quixote_1024"].image.read()
    with Image.open(images / f"{q}_001.png") as exported:
        assert np.array_equal(np.asarray(exported), np.asarray(to_grayscale(open_xray(stored))))
    rendering = to_grayscale(open_xray(dicom_file(DICOM).read_bytes()))
    rendering = rendering.resize((964, 1024), Image.Resampling.BILINEAR, reducing_gap=None)
    with Image.open(images / f"{q}_000.png") as exported:
        assert np.array_equal(np.asarray(exported), np.asarray(rendering))
        assert np.asarray(exported).std() > 20  # a radiograph, not a blank


def test_no_name_record_number_or_date_of_birth_in_any_exported_file(clinic, tmp_path):
    out = tmp_path / "export"
    export_readings(out)
    dicom = clinic["xrays"]["quixote_dicom"]

    needles = ["Zebulon", "Quixotefield", "Philippa", "Wintergreen", "Okonkwo", "Rosamund", "Thistlewaite"]
    needles += ["QX-5550172", "5550172", "WG-8841230", "8841230", "RT-3306619", "3306619"]
    for dob in (QUIXOTE_DOB, WINTERGREEN_DOB):
        needles += [
            dob.isoformat(), dob.strftime("%Y%m%d"), dob.strftime("%d/%m/%Y"), dob.strftime("%m/%d/%Y"),
            dob.strftime("%d.%m.%Y"), dob.strftime("%Y/%m/%d"), dob.strftime("%d-%m-%Y"), dob.strftime("%d %b %Y"),
            dob.strftime("%b %d, %Y"), dob.strftime("%d %B %Y"), dob.strftime("%B %d, %Y"),
        ]
    # What the DICOM header carried (its own patient, study and UIDs), the notes and file names.
    needles += ["CompressedSamples", "9RG1", "19400305", dicom.sop_instance_uid, dicom.study_instance_uid]
    needles += [dicom.accession_number, "penicillin", "coughing", "impression", "Second look"]
    needles += [Path(xray.original_name).stem for xray in clinic["xrays"].values()]
    assert dicom.sop_instance_uid and dicom.study_instance_uid and dicom.accession_number  # really tested

    searched = 0
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        if path.suffix == ".png":
            for kind, chunk in png_chunks(path.read_bytes()):
                if kind in ("zTXt", "iTXt"):
                    data += zlib.decompress(chunk.split(b"\0", 2)[-1].lstrip(b"\0")).lower()
        for needle in needles:
            assert needle.lower().encode() not in data, (needle, path.name)
        searched += 1
    assert searched == 7  # the label file, the export's manifest and the 5 images


def test_the_same_patient_has_the_same_number_in_every_export(clinic, tmp_path):
    quixote = clinic["patients"][0]

    export_readings(tmp_path / "first")
    first = {row[3] for row in read_rows(tmp_path / "first")[1:]}
    export_readings(tmp_path / "second", since=datetime.date(2026, 6, 1))

    assert ExportPseudonym.objects.count() == 3
    assert all(PSEUDONYM_LOW <= number < PSEUDONYM_HIGH for number in ExportPseudonym.objects.values_list("number", flat=True))
    assert [row[3] for row in read_rows(tmp_path / "second")[1:]] == [str(pseudonym(quixote))]
    assert str(pseudonym(quixote)) in first


def test_a_drawn_number_already_taken_is_drawn_again(clinic, tmp_path, monkeypatch):
    quixote, wintergreen, thistle = clinic["patients"]
    ExportPseudonym.objects.create(patient=quixote, number=PSEUDONYM_LOW + 5)
    draws = iter([5, 5, 7, 9])
    monkeypatch.setattr(readings_export.secrets, "randbelow", lambda _bound: next(draws))

    export_readings(tmp_path / "export")

    assert pseudonym(quixote) == PSEUDONYM_LOW + 5
    assert {pseudonym(wintergreen), pseudonym(thistle)} == {PSEUDONYM_LOW + 7, PSEUDONYM_LOW + 9}


def test_since_keeps_readings_signed_off_on_or_after_that_date(clinic, tmp_path):
    quixote = clinic["patients"][0]
    out = tmp_path / "export"

    call_command("export_readings", "--out", out, "--since", "2026-05-20", stdout=StringIO(), verbosity=0)

    q = pseudonym(quixote)
    # The amendment of 2026-05-20 and the DICOM's reading of 2026-06-02, numbered among what is exported.
    assert [row[:3] for row in read_rows(out)[1:]] == [[f"{q}_000.png", "Nodule|Mass", "0"], [f"{q}_001.png", "No Finding", "1"]]
    manifest = json.loads((out / "dispredo_export.json").read_text())
    assert manifest["since"] == "2026-05-20"
    assert manifest["counts"] == {"images": 2, "patients": 1, "skipped": {}}
    assert manifest["format_version"] == 1 and manifest["source"] == "dispredo-readings"
    assert datetime.datetime.fromisoformat(manifest["created_at"]).tzinfo is not None


def test_the_command_says_what_it_wrote_and_what_it_skipped(clinic, tmp_path):
    out = tmp_path / "export"
    stdout = StringIO()

    call_command("export_readings", "--out", out, stdout=stdout)

    assert stdout.getvalue() == (
        "Skipped 1 X-ray(s): 1 with a finding marked not assessable.\n"
        f"Exported 5 image(s) of 3 patient(s) to {out}.\n"
    )


def test_the_newest_signed_version_is_exported_and_drafts_never(clinic, tmp_path):
    out = tmp_path / "export"
    export_readings(out)
    rows = read_rows(out)[1:]

    quixote_256 = [row for row in rows if row[2] == "2" and row[3] == str(pseudonym(clinic["patients"][0]))]
    assert [row[1] for row in quixote_256] == ["No Finding"]  # v2 (the amendment), not v1 nor the draft v3
    assert "Edema" not in {label for row in rows for label in row[1].split("|")}  # the draft-only X-ray
    assert "Hernia" not in {label for row in rows for label in row[1].split("|")}
    assert [row[0] for row in rows if row[3] == str(pseudonym(clinic["patients"][1]))] == [
        f"{pseudonym(clinic['patients'][1])}_000.png"
    ]


def test_each_exported_xray_is_audited_under_whoever_ran_it(clinic, tmp_path):
    out = tmp_path / "export"

    call_command("export_readings", "--out", out, verbosity=0)

    events = AuditEvent.objects.filter(action=AuditAction.EXPORT)
    names = {row[0] for row in read_rows(out)[1:]}
    assert sorted(event.detail for event in events) == sorted(f"exported for training as {name}" for name in names)
    xrays = clinic["xrays"]
    exported = {xrays[key].pk for key in ("quixote_1024", "quixote_256", "quixote_dicom", "wintergreen", "thistle")}
    assert {event.object_id for event in events} == exported
    for event in events:
        assert event.object_type == "xray" and event.user is None
        assert event.username == f"manage.py ({getpass.getuser()})"
        assert event.patient_mrn == event.patient.mrn


def test_it_refuses_an_output_folder_that_is_not_empty(clinic, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")

    with pytest.raises(CommandError) as error:
        call_command("export_readings", "--out", out, verbosity=0)

    assert str(error.value) == (
        f"The output folder {out} is not empty; choose a new or empty folder for --out "
        "(an export is never merged into an earlier one)."
    )
    assert files_of(out) == ["notes.txt"]
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_it_writes_into_an_empty_folder(clinic, tmp_path):
    out = tmp_path / "export"
    out.mkdir()

    assert export_readings(out).images == 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "media"]


def test_it_refuses_when_there_is_nothing_signed_to_export(clinic, tmp_path):
    out = tmp_path / "export"

    with pytest.raises(ExportError) as error:
        export_readings(out, since=datetime.date(2027, 1, 1))

    assert str(error.value) == (
        "There are no signed-off readings signed off on or after 2027-01-01 to export; nothing was written. "
        "Sign readings off first, or choose an earlier --since."
    )
    assert not out.exists() and sorted(path.name for path in tmp_path.iterdir()) == ["media"]


def test_it_refuses_when_no_reading_can_be_a_label(clinic, tmp_path):
    for key in ("thistle", "quixote_256", "quixote_dicom"):
        clinic["xrays"][key].readings.all().delete()

    with pytest.raises(ExportError) as error:
        export_readings(tmp_path / "export", since=datetime.date(2026, 4, 12))

    assert str(error.value) == (
        "None of the 1 signed-off readings signed off on or after 2026-04-12 can be written as NIH labels "
        "(1 with a finding marked not assessable); nothing was written."
    )
    assert not ExportPseudonym.objects.exists()


def test_it_refuses_a_since_that_is_not_a_date(db, tmp_path):
    with pytest.raises(CommandError) as error:
        call_command("export_readings", "--out", tmp_path / "export", "--since", "May 2026", verbosity=0)

    assert str(error.value) == "--since takes a date as YYYY-MM-DD, e.g. 2026-01-31, not 'May 2026'."


def test_an_unreadable_stored_file_is_skipped_and_counted(clinic, tmp_path):
    broken = clinic["xrays"]["wintergreen"]
    Path(broken.image.path).write_bytes(b"not an image any more")

    result = export_readings(tmp_path / "export")

    assert result.images == 4 and result.patients == 2
    assert result.skipped == {"a finding marked not assessable": 1, "the stored image cannot be read": 1}
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT, object_id=broken.pk).exists()


def test_the_export_needs_no_tensorflow():
    code = (
        "import sys, django; django.setup(); "
        "import mltrain.readings_export, mltrain.management.commands.export_readings; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras')))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dispredo_site.settings"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2])

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
