"""preprocess over several data folders: the NIH sample and clinic exports, sources recorded per image."""

import csv
import json
import shutil
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from dispredo_core.findings import NO_FINDING
from dispredo_core.imaging import to_model_pixels
from mltrain import nih, splits
from mltrain.dataset import SPLITS, array_path, load_sources, load_split, read_manifest
from mltrain.preprocess import PreprocessError, preprocess
from mltrain.readings_export import export_readings

from .clinic import patient, sign, store
from mltrain.tests.nih_layout import HEADER, LABEL_FILE, write_label_file

SIZE = 16


def run(data_dirs, out, **options):
    return preprocess(data_dirs, out, **{"size": SIZE, "workers": 1, "seed": 42, "progress": False, **options})


def images_by_source(out):
    """(source name, image name) -> (split, patient, pixels) over all splits."""
    found = {}
    for split in SPLITS:
        data, origin = load_split(out, split), load_sources(out, split)
        for index, (source, name) in enumerate(zip(origin.names(), data.names)):
            key = (str(source), str(name))
            assert key not in found, key
            found[key] = (split, int(data.patients[index]), data.pixels[index])
    return found


def label_rows(folder):
    with open(folder / LABEL_FILE, newline="") as handle:
        return {row["Image Index"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def nih_folder(tmp_path, nih_sample):
    """40 of the sample's 64 px images (and one listed image absent), in the NIH layout."""
    return nih_sample.build(tmp_path / "nih", nih_sample.pick(64, 40))


@pytest.fixture
def export_folder(db, settings, tmp_path, nih_sample):
    """An export of 10 of the sample's 256 px images of 9 patients, read as the NIH labels them."""
    settings.MEDIA_ROOT = tmp_path / "media"
    patients = {}
    for name in nih_sample.pick(256, 10):
        row = nih_sample.rows[name]
        if row[3] not in patients:
            patients[row[3]] = patient(f"NIH-{row[3]}", f"Sample Patient {row[3]}", row[5])
        xray = store(patients[row[3]], nih_sample.paths[name])
        sign(xray, present=() if row[1] == NO_FINDING else row[1].split("|"))
    return export_readings(tmp_path / "export").out


def test_it_takes_the_nih_sample_and_an_export_together(nih_folder, export_folder, tmp_path):
    out = tmp_path / "out"

    manifest = run([nih_folder, export_folder], out)

    nih_patients = {row["Patient ID"] for name, row in label_rows(nih_folder).items() if name != "00000100_000.png"}
    described = [(source["name"], source["kind"], source["images"], source["patients"]) for source in manifest["sources"]]
    assert described == [("nih", "nih", 40, len(nih_patients)), ("export", "dispredo-readings", 10, 9)]
    assert manifest["source"] == [str(nih_folder), str(export_folder)]
    assert manifest["images_found"] == 50 and manifest["missing_images"] == 1 and manifest["split_method"] == "grouped"
    found = images_by_source(out)
    exported = label_rows(export_folder)
    assert {name for source, name in found if source == "export"} == set(exported)
    assert len(found) == 50
    for name, row in exported.items():
        split, patient_id, pixels = found[("export", name)]
        assert patient_id == int(row["Patient ID"]) >= 10**11
        with Image.open(export_folder / "images_001" / "images" / name) as image:
            assert np.array_equal(pixels, to_model_pixels(image, SIZE)), name
    for source in manifest["sources"]:
        assert sum(source["splits"].values()) == source["images"]
        in_split = [value[0] for (name, _image), value in found.items() if name == source["name"]]
        assert source["splits"] == {split: in_split.count(split) for split in SPLITS}


def test_each_patient_stays_in_one_split_over_the_union(nih_folder, export_folder, tmp_path):
    out = tmp_path / "out"
    run([nih_folder, export_folder], out)

    patients = np.concatenate([load_split(out, split).patients for split in SPLITS])
    sizes = [len(load_split(out, split).patients) for split in SPLITS]
    rows = np.split(np.arange(len(patients)), np.cumsum(sizes)[:-1])
    splits.check_disjoint(patients, dict(zip(SPLITS, rows)))  # raises if a patient is in two splits
    by_split = {split: set(load_split(out, split).patients.tolist()) for split in SPLITS}
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]


def test_it_refuses_a_patient_id_found_in_two_folders(nih_sample, tmp_path):
    first = nih_sample.build(tmp_path / "first", nih_sample.pick(64, 6))
    second = nih_sample.build(tmp_path / "second", nih_sample.pick(64, 12)[5:])  # shares one image of patient 3

    with pytest.raises(CommandError) as error:
        call_command(
            "preprocess", "--data-dir", first, "--data-dir", second, "--out", tmp_path / "out",
            "--size", SIZE, "--workers", 1, verbosity=0, stdout=StringIO(),
        )

    assert str(error.value) == (
        f"1 Patient ID(s) are in both {first} and {second}, e.g. 3: a patient's images must all come from one "
        "folder, or the split by patient cannot hold. Remove them from one folder, or leave one folder out."
    )
    assert not (tmp_path / "out").exists()


def test_it_refuses_a_folder_given_twice(nih_folder, tmp_path):
    with pytest.raises(PreprocessError) as error:
        run([nih_folder, nih_folder], tmp_path / "out")

    assert str(error.value) == f"The data directory {nih_folder} is given twice; give each folder once."


def test_images_of_the_same_name_in_two_folders_stay_apart(nih_sample, nih_folder, tmp_path):
    """A second folder with the same image names, other patients and inverted pixels."""
    twin = tmp_path / "twin"
    shutil.copytree(nih_folder, twin)
    for path in twin.glob("images_*/images/*.png"):
        with Image.open(path) as image:
            Image.fromarray(255 - np.asarray(image.convert("L"))).save(path)
    rows = [[row[0], row[1], row[2], str(int(row[3]) + 90_000_000), *row[4:]] for row in label_rows_raw(nih_folder)]
    write_label_file(twin / LABEL_FILE, HEADER, rows)
    out = tmp_path / "out"

    manifest = run([nih_folder, twin], out)

    found = images_by_source(out)
    assert manifest["images_found"] == 80 and len(found) == 80
    for (source, name), (_split, patient_id, pixels) in found.items():
        if source == "twin":
            _split, original_patient, original = found[("nih", name)]
            assert patient_id == original_patient + 90_000_000
            with Image.open(next(twin.glob(f"images_*/images/{name}"))) as image:
                assert np.array_equal(pixels, to_model_pixels(image, SIZE)), name
            assert not np.array_equal(pixels, original), name


def label_rows_raw(folder):
    with open(folder / LABEL_FILE, newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_official_lists_can_keep_a_folder_out_of_the_test_split(nih_folder, export_folder, tmp_path):
    names = sorted(label_rows(export_folder))
    (export_folder / nih.TRAIN_VAL_LIST).write_text("\n".join(names) + "\n")
    (export_folder / nih.TEST_LIST).write_text("")
    out = tmp_path / "out"

    manifest = run([nih_folder, export_folder], out)

    assert manifest["split_method"] == "mixed"
    nih_source, export_source = manifest["sources"]
    assert export_source["split_method"] == "official" and nih_source["split_method"] == "grouped"
    assert export_source["splits"]["test"] == 0 and export_source["splits"]["val"] > 0
    assert all(count > 0 for count in nih_source["splits"].values())
    test_sources = load_sources(out, "test")
    assert set(test_sources.kinds().tolist()) == {"nih"}
    assert sum(manifest["splits"][split]["count"] for split in SPLITS) == 50


def test_each_folders_lists_place_its_own_images(nih_folder, export_folder, tmp_path):
    nih_names = sorted(name for name in label_rows(nih_folder) if name != "00000100_000.png")
    nih_test = [name for name in nih_names if int(name[:8]) % 2 == 0]
    (nih_folder / nih.TRAIN_VAL_LIST).write_text("\n".join(n for n in nih_names if n not in nih_test) + "\n")
    (nih_folder / nih.TEST_LIST).write_text("\n".join(nih_test) + "\n")
    rows = label_rows(export_folder)
    export_test = sorted(name for name, row in rows.items() if int(row["Patient ID"]) % 2 == 0)
    (export_folder / nih.TRAIN_VAL_LIST).write_text("\n".join(n for n in rows if n not in export_test) + "\n")
    (export_folder / nih.TEST_LIST).write_text("\n".join(export_test) + "\n")
    out = tmp_path / "out"

    manifest = run([nih_folder, export_folder], out)

    assert manifest["split_method"] == "official"
    test = {(source, name) for (source, name), value in images_by_source(out).items() if value[0] == "test"}
    assert test == {("nih", name) for name in nih_test} | {("export", name) for name in export_test}


def test_a_folders_lists_are_checked_and_named(nih_folder, export_folder, tmp_path):
    names = sorted(label_rows(export_folder))
    (export_folder / nih.TRAIN_VAL_LIST).write_text("\n".join(names[1:]) + "\n")
    (export_folder / nih.TEST_LIST).write_text("")

    with pytest.raises(PreprocessError) as error:
        run([nih_folder, export_folder], tmp_path / "out")

    assert str(error.value) == (
        f"{export_folder}: 1 image(s) are in neither train_val_list.txt nor test_list.txt, e.g. {names[0]}. "
        "Use the lists that came with this label file, or remove both."
    )


def test_a_single_folder_is_split_as_before(nih_folder, tmp_path):
    out = tmp_path / "out"

    manifest = run(nih_folder, out, seed=7)

    entries = nih.read_label_file(nih_folder / LABEL_FILE)
    on_disk = nih.find_images(nih_folder)
    kept = [index for index, name in enumerate(entries.names) if name in on_disk]
    expected = splits.grouped_split(entries.patients[kept], seed=7)
    for split in SPLITS:
        assert load_split(out, split).names.tolist() == [entries.names[kept[row]] for row in expected[split]]
        assert load_sources(out, split).names().tolist() == ["nih"] * len(expected[split])
    assert manifest["source"] == str(nih_folder)
    assert manifest["sources"][0]["kind"] == "nih" and len(manifest["sources"]) == 1


def test_data_preprocessed_before_sources_reads_as_one_source(nih_folder, tmp_path):
    out = tmp_path / "out"
    run(nih_folder, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["sources"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    for split in SPLITS:
        array_path(out, split, "sources").unlink()

    for split in SPLITS:
        origin = load_sources(out, split)
        assert origin.index.tolist() == [0] * len(load_split(out, split).names)
        assert origin.sources == [
            {"name": "nih", "path": str(nih_folder), "kind": "nih", "split_method": "grouped", "images": 40}
        ]
        assert set(origin.kinds().tolist()) == {"nih"}
    assert read_manifest(out)["images_found"] == 40


def test_the_command_takes_several_data_folders(nih_folder, export_folder, tmp_path):
    out = tmp_path / "out"
    stdout = StringIO()

    call_command(
        "preprocess", "--data-dir", nih_folder, "--data-dir", export_folder, "--out", out,
        "--size", SIZE, "--workers", 1, stdout=stdout,
    )

    sources = read_manifest(out)["sources"]
    text = stdout.getvalue()
    assert "50 of 51 listed images converted to 16 px; 1 listed but absent (skipped)." in text
    for source in sources:
        counts = ", ".join(f"{source['splits'][split]:,} {split}" for split in SPLITS)
        line = f"  {source['name']}: {source['images']} images of {source['patients']} patients"
        assert f"{line} ({source['kind']}, grouped split): {counts}\n" in text


def test_two_exports_of_one_clinic_share_patients_in_one_split(db, settings, tmp_path, nih_sample, nih_folder):
    """An export, then a later one with --since: the same pseudonym is the same patient, kept in one split."""
    import datetime

    from django.utils import timezone

    settings.MEDIA_ROOT = tmp_path / "media"
    names = nih_sample.pick(256, 12)
    person = patient("CLINIC-1", "Returning Patient", "F")
    earlier = timezone.now() - datetime.timedelta(days=10)
    for name in names[:6]:
        sign(store(person, nih_sample.paths[name]), signed_at=earlier)
    first = export_readings(tmp_path / "first").out
    since = timezone.localdate()
    for name in names[6:]:
        sign(store(person, nih_sample.paths[name]))
    second = export_readings(tmp_path / "second", since=since).out
    (pseudonym,) = {row["Patient ID"] for row in label_rows(first).values()}
    assert {row["Patient ID"] for row in label_rows(second).values()} == {pseudonym}

    run([nih_folder, first, second], tmp_path / "out")

    splits_of_patient = {
        split for (source, _), (split, patient_id, _) in images_by_source(tmp_path / "out").items()
        if patient_id == int(pseudonym)
    }
    assert len(splits_of_patient) == 1
    found = images_by_source(tmp_path / "out")
    assert sum(1 for (source, _), row in found.items() if row[1] == int(pseudonym)) == 12
