import csv
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import to_model_pixels
from mltrain import nih
from mltrain.dataset import CHART_FILE, SPLITS, load_split, read_manifest
from mltrain.preprocess import PreprocessError, preprocess

from mltrain.tests.nih_layout import ABSENT, HEADER, LABEL_FILE, made_up_row, write_label_file

SIZE = 16


def run(data_dir, out, **options):
    options = {"size": SIZE, "workers": 1, "seed": 42, "progress": False, **options}
    return preprocess(data_dir, out, **options)


def everything(directory):
    """name -> (pixels, labels, patient, source size, split) over all splits."""
    rows = {}
    for split in SPLITS:
        data = load_split(directory, split)
        for index, name in enumerate(data.names):
            rows[str(name)] = (
                data.pixels[index],
                data.labels[index],
                int(data.patients[index]),
                int(data.source_sizes[index]),
                split,
            )
    return rows


def image_file(data_dir, name):
    return next(data_dir.glob(f"images*/**/{name}"))


def test_it_writes_the_arrays_of_the_contract(small_preprocessed):
    small_nih, out = small_preprocessed
    manifest = read_manifest(out)

    assert set(manifest) == {
        "format_version",
        "size",
        "findings",
        "seed",
        "source",
        "sources",
        "split_method",
        "missing_images",
        "images_found",
        "splits",
    }
    assert manifest["format_version"] == 1 and manifest["seed"] == 42 and manifest["source"] == str(small_nih)
    assert manifest["size"] == SIZE and manifest["findings"] == list(FINDINGS)
    assert set(manifest["splits"]) == set(SPLITS)
    for split in SPLITS:
        data = load_split(out, split)
        count = manifest["splits"][split]["count"]
        assert isinstance(data.pixels, np.memmap)
        assert data.pixels.dtype == np.uint8 and data.pixels.shape == (count, SIZE, SIZE)
        assert data.labels.dtype == np.uint8 and data.labels.shape == (count, 14)
        assert data.patients.dtype == np.int64 and data.patients.shape == (count,)
        assert data.names.dtype.kind == "U" and data.names.shape == (count,)
        assert data.source_sizes.dtype == np.int32 and data.source_sizes.shape == (count,)
    sizes = {name: row[3] for name, row in everything(out).items()}
    assert sorted(set(sizes.values())) == [64, 256, 1024]
    assert sum(size == 1024 for size in sizes.values()) == 4


def test_it_converts_every_mode_with_the_one_image_path(small_preprocessed):
    small_nih, out = small_preprocessed

    rows = everything(out)
    modes = set()
    for name, (pixels, *_rest) in rows.items():
        with Image.open(image_file(small_nih, name)) as image:
            modes.add(image.mode)
            assert np.array_equal(pixels, to_model_pixels(image, SIZE)), name
    assert modes == {"L", "RGBA", "RGB", "I;16"}
    assert rows["99990002_000.png"][0].std() > 10  # 16-bit windowed, not crushed to black or white


def test_labels_match_the_label_file(small_preprocessed):
    small_nih, out = small_preprocessed

    rows = everything(out)
    with open(small_nih / LABEL_FILE, newline="") as handle:
        listed = {row["Image Index"]: row for row in csv.DictReader(handle)}
    for name, (_pixels, labels, patient, _size, _split) in rows.items():
        text = listed[name]["Finding Labels"]
        expected = set() if text == "No Finding" else set(text.split("|"))
        assert {FINDINGS[index] for index in np.flatnonzero(labels)} == expected, name
        assert patient == int(listed[name]["Patient ID"]), name
    assert [FINDINGS[index] for index in np.flatnonzero(rows["00000003_003.png"][1])] == ["Infiltration", "Hernia"]
    assert not rows["00000005_000.png"][1].any()  # No Finding: all zeros


def test_it_reports_absent_images(small_nih, tmp_path):
    out = tmp_path / "out"
    stdout = StringIO()

    call_command("preprocess", "--data-dir", small_nih, "--out", out, "--size", SIZE, "--workers", 1, stdout=stdout)

    manifest = read_manifest(out)
    assert manifest["missing_images"] == 1
    assert manifest["images_found"] == 42
    assert ABSENT not in everything(out)
    assert "42 of 43 listed images converted to 16 px; 1 listed but absent (skipped)." in stdout.getvalue()


def test_no_patient_is_in_two_splits(small_preprocessed):
    _data_dir, out = small_preprocessed
    manifest = read_manifest(out)

    assert manifest["split_method"] == "grouped"
    patients = {split: set(load_split(out, split).patients.tolist()) for split in SPLITS}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert all(patients.values())


def test_the_split_depends_on_the_seed_only(small_nih, tmp_path):
    first = run(small_nih, tmp_path / "a", seed=7)
    second = run(small_nih, tmp_path / "b", seed=7)

    assert first["splits"] == second["splits"]
    for split in SPLITS:
        assert np.array_equal(load_split(tmp_path / "a", split).names, load_split(tmp_path / "b", split).names)


def test_it_follows_the_official_lists_and_carves_validation_by_patient(small_nih, tmp_path, nih_sample):
    names = sorted(everything_names(small_nih))
    patient = {name: int(name[:8]) for name in names}
    test_names = [name for name in names if patient[name] % 3 == 0]  # patient 3 (8 images) among them
    (small_nih / nih.TRAIN_VAL_LIST).write_text("\n".join(n for n in names if n not in test_names) + "\n")
    (small_nih / nih.TEST_LIST).write_text("\n".join(test_names) + "\n")
    out = tmp_path / "out"

    manifest = run(small_nih, out)

    assert manifest["split_method"] == "official"
    data = {split: load_split(out, split) for split in SPLITS}
    assert sorted(data["test"].names.tolist()) == test_names
    assert manifest["splits"]["val"]["count"] > 0
    patients = {split: set(data[split].patients.tolist()) for split in SPLITS}
    assert not patients["train"] & patients["val"]
    assert not (patients["train"] | patients["val"]) & patients["test"]


def everything_names(data_dir):
    return [path.name for path in data_dir.glob("images*/**/*.png")]


def test_it_refuses_official_lists_that_put_a_patient_on_both_sides(small_nih, tmp_path):
    names = sorted(everything_names(small_nih))
    (small_nih / nih.TRAIN_VAL_LIST).write_text("\n".join(n for n in names if n != "00000003_001.png"))
    (small_nih / nih.TEST_LIST).write_text("00000003_001.png\n")

    with pytest.raises(PreprocessError) as error:
        run(small_nih, tmp_path / "out")

    assert str(error.value) == (
        "1 patient(s) have images in both train_val_list.txt and test_list.txt, e.g. patient 3; "
        "the official split is by patient."
    )


def test_it_refuses_half_of_the_official_lists(small_nih, tmp_path):
    (small_nih / nih.TEST_LIST).write_text("00000003_001.png\n")

    with pytest.raises(PreprocessError) as error:
        run(small_nih, tmp_path / "out")

    assert str(error.value) == (
        f"{small_nih} has test_list.txt but not train_val_list.txt: put both official lists beside the "
        "label file, or neither for a split by patient with --seed."
    )


def test_manifest_counts_match_the_arrays(small_preprocessed):
    _data_dir, out = small_preprocessed
    manifest = read_manifest(out)

    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sum(manifest["splits"][split]["count"] for split in SPLITS) == manifest["images_found"] == 42
    for split in SPLITS:
        data = load_split(out, split)
        summary = manifest["splits"][split]
        assert summary["count"] == len(data.names)
        assert summary["patients"] == len(set(data.patients.tolist()))
        assert summary["per_finding"] == {name: int(data.labels[:, i].sum()) for i, name in enumerate(FINDINGS)}
        assert summary["no_finding"] == int((data.labels.sum(axis=1) == 0).sum())


def test_it_draws_the_class_frequency_chart(small_preprocessed):
    _data_dir, out = small_preprocessed

    with Image.open(out / CHART_FILE) as chart:
        assert chart.format == "PNG" and chart.width > 600


def test_a_pool_of_workers_gives_the_same_arrays(small_nih, tmp_path):
    run(small_nih, tmp_path / "one", workers=1)
    run(small_nih, tmp_path / "two", workers=2)

    for split in SPLITS:
        one, two = load_split(tmp_path / "one", split), load_split(tmp_path / "two", split)
        for field in one._fields:
            assert np.array_equal(getattr(one, field), getattr(two, field)), (split, field)


def test_it_resizes_to_224(nih_sample, tmp_path):
    names = nih_sample.pick(1024, 3) + nih_sample.pick(64, 3) + nih_sample.pick(256, 3)
    data_dir = nih_sample.build(tmp_path / "nih", names)
    out = tmp_path / "out"

    manifest = run(data_dir, out, size=224)

    assert manifest["size"] == 224
    assert load_split(out, "train").pixels.shape[1:] == (224, 224)


def test_it_finds_images_in_a_flat_folder_and_the_2020_label_file(nih_sample, tmp_path):
    data_dir = nih_sample.build(
        tmp_path / "nih", nih_sample.pick(64, 12), label_file="Data_Entry_2017_v2020.csv", flat=True
    )

    manifest = run(data_dir, tmp_path / "out")

    assert manifest["images_found"] == 12 and manifest["missing_images"] == 1


def test_a_rerun_replaces_the_previous_output(small_nih, tmp_path):
    out = tmp_path / "out"
    run(small_nih, out, size=16)
    (out / "stale.txt").write_text("from the first run")

    run(small_nih, out, size=24)

    assert read_manifest(out)["size"] == 24
    assert not (out / "stale.txt").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["nih", "out"]  # no temporary folders left


def test_a_failed_rerun_keeps_the_previous_output(small_nih, tmp_path):
    out = tmp_path / "out"
    run(small_nih, out)
    (small_nih / "images_001" / "images" / "00000003_000.png").write_bytes(b"not a png")

    with pytest.raises(PreprocessError) as error:
        run(small_nih, out, size=24)

    assert str(error.value).startswith("1 image(s) could not be read: 00000003_000.png (UnidentifiedImageError: ")
    assert str(error.value).endswith("Replace the damaged files (re-extract their archive) and run again.")
    assert read_manifest(out)["size"] == SIZE
    assert sorted(path.name for path in tmp_path.iterdir()) == ["nih", "out"]


def test_it_needs_the_label_file(tmp_path):
    with pytest.raises(CommandError) as error:
        call_command("preprocess", "--data-dir", tmp_path, "--out", tmp_path / "out", verbosity=0, stdout=StringIO())

    assert str(error.value) == (
        f"No NIH label file in {tmp_path}: expected Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv). "
        "Point --data-dir at the folder of the NIH ChestX-ray14 download."
    )


def test_it_needs_a_data_directory(tmp_path):
    with pytest.raises(PreprocessError) as error:
        run(tmp_path / "nowhere", tmp_path / "out")

    assert str(error.value) == f"The data directory {tmp_path / 'nowhere'} does not exist."


def test_it_needs_the_label_columns(tmp_path):
    header = [column for column in HEADER if column != "Patient ID"]
    write_label_file(tmp_path / LABEL_FILE, header, [["00000003_000.png", "Hernia", "0"]])

    with pytest.raises(PreprocessError) as error:
        run(tmp_path, tmp_path / "out")

    assert str(error.value) == (
        "Data_Entry_2017.csv lacks the column 'Patient ID'; the NIH label file has "
        "'Image Index', 'Finding Labels', 'Patient ID'."
    )


def test_it_needs_images(tmp_path):
    rows = [made_up_row(name, "Hernia", 3, 1024) for name in ("00000003_000.png", "00000003_001.png", ABSENT)]
    write_label_file(tmp_path / LABEL_FILE, HEADER, rows)

    with pytest.raises(CommandError) as error:
        call_command("preprocess", "--data-dir", tmp_path, "--out", tmp_path / "out", verbosity=0, stdout=StringIO())

    assert str(error.value) == (
        f"None of the 3 images listed in Data_Entry_2017.csv is in {tmp_path}: the NIH layout keeps them "
        f"in images_*/images/ or images/, and {tmp_path} has none of those folders."
    )


def test_it_names_an_unknown_label_and_its_row(tmp_path):
    rows = [made_up_row("00000003_000.png", "Hernia", 3, 64), made_up_row("00000003_001.png", "Hernia|Pneumonitis", 3, 64)]
    write_label_file(tmp_path / LABEL_FILE, HEADER, rows)

    with pytest.raises(PreprocessError) as error:
        run(tmp_path, tmp_path / "out")

    assert str(error.value) == (
        "Data_Entry_2017.csv line 3 (00000003_001.png) has the unknown finding 'Pneumonitis'. "
        f"Known findings: {', '.join(FINDINGS)}; 'No Finding' for none."
    )


def test_it_refuses_an_unwritable_output(small_nih, tmp_path):
    (tmp_path / "a-file").write_text("")

    with pytest.raises(CommandError) as error:
        call_command(
            "preprocess", "--data-dir", small_nih, "--out", tmp_path / "a-file" / "out", verbosity=0, stdout=StringIO()
        )

    assert str(error.value) == (
        f"Cannot write the output {tmp_path / 'a-file' / 'out'}: {tmp_path / 'a-file'} is a file, not a folder. "
        "Choose another --out or fix its permissions."
    )


def test_it_refuses_to_replace_a_folder_it_did_not_write(small_nih, tmp_path):
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "letter.txt").write_text("keep me")

    with pytest.raises(PreprocessError) as error:
        run(small_nih, tmp_path / "documents")

    assert "is a directory with other files in it (no manifest.json)" in str(error.value)
    assert (tmp_path / "documents" / "letter.txt").read_text() == "keep me"


@pytest.mark.parametrize("size", [0, 4, 2048])
def test_it_refuses_a_bad_size(tmp_path, size):
    with pytest.raises(PreprocessError) as error:
        run(tmp_path, tmp_path / "out", size=size)

    assert str(error.value) == f"--size must be a whole number of pixels from 8 to 1024, not {size}."
