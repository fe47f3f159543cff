import hashlib
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from diagnosis.findings import FINDINGS
from mltrain.balance import BalanceError, balance, smotetomek
from mltrain.dataset import BALANCE_REPORT_FILE, SOURCES_ARRAY, DatasetError, Split, load_balanced, load_split


def fingerprints(directory):
    """sha256 of every file of the preprocessed folder (not of balanced/)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in directory.iterdir() if path.is_file()}


def test_classes_are_equal_after_balancing(preprocessed):
    report = balance(preprocessed, seed=42, progress=False)

    balanced = [name for name in FINDINGS if report["findings"][name]["after"] is not None]
    assert len(balanced) >= 5
    for name in balanced:
        pixels, labels = load_balanced(preprocessed, name)
        positives = int(labels.sum())
        assert pixels.dtype == np.uint8 and pixels.shape == (len(labels), 16, 16)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
        assert positives == len(labels) - positives, name
        assert report["findings"][name]["after"] == {"positive": positives, "negative": positives}
        assert positives > report["findings"][name]["before"]["positive"]  # SMOTE made new positives


def test_validation_and_test_files_are_unchanged(preprocessed):
    before = fingerprints(preprocessed)

    balance(preprocessed, seed=42, progress=False)

    assert fingerprints(preprocessed) == before
    assert sorted(name for name in before if name.startswith(("val_", "test_"))) == sorted(
        f"{split}_{array}.npy" for split in ("val", "test") for array in (*Split._fields, SOURCES_ARRAY)
    )


def test_it_reports_counts_before_and_after(preprocessed):
    stdout = StringIO()

    call_command("balance", "--data", preprocessed, "--seed", 3, verbosity=1, stdout=stdout)

    report = json.loads((preprocessed / "balanced" / BALANCE_REPORT_FILE).read_text())
    assert (report["method"], report["seed"], report["max_negatives"]) == ("smotetomek", 3, 12000)
    assert list(report["findings"]) == list(FINDINGS)
    labels = load_split(preprocessed, "train").labels
    for index, name in enumerate(FINDINGS):
        entry = report["findings"][name]
        positives = int(labels[:, index].sum())
        assert entry["before"] == {"positive": positives, "negative": len(labels) - positives}
        line = next(line for line in stdout.getvalue().splitlines() if line.startswith(name + " "))
        assert line.split()[1:3] == [str(positives), str(len(labels) - positives)]
        if entry["after"] is not None:
            assert line.split()[3:5] == [str(entry["after"]["positive"]), str(entry["after"]["negative"])]
        else:
            assert f"skipped: {entry['skipped']}" in line
    assert f"Wrote {preprocessed / 'balanced'} (method smotetomek; report balance_report.json)." in stdout.getvalue()


def test_it_caps_negatives_first(preprocessed):
    report = balance(preprocessed, method="none", max_negatives=20, seed=42, progress=False)

    assert report["max_negatives"] == 20
    for name in FINDINGS:
        before, after = report["findings"][name]["before"], report["findings"][name]["after"]
        assert before["negative"] > 20
        assert after == {"positive": before["positive"], "negative": 20}


def test_method_none_keeps_training_images_only(preprocessed):
    balance(preprocessed, method="none", max_negatives=0, seed=42, progress=False)

    train = load_split(preprocessed, "train")
    pixels, labels = load_balanced(preprocessed / "balanced", "Infiltration")
    assert np.array_equal(pixels, train.pixels)
    assert np.array_equal(labels, train.labels[:, FINDINGS.index("Infiltration")])


def test_a_rerun_replaces_the_balanced_sets(preprocessed):
    balance(preprocessed, method="none", max_negatives=20, progress=False)
    balance(preprocessed, method="none", max_negatives=10, progress=False)

    assert json.loads((preprocessed / "balanced" / BALANCE_REPORT_FILE).read_text())["max_negatives"] == 10
    assert not [path.name for path in preprocessed.iterdir() if path.name.startswith(".")]


def test_it_skips_and_reports_a_finding_with_too_few_positives(preprocessed):
    report = balance(preprocessed, seed=42, progress=False)

    skipped = {name: entry for name, entry in report["findings"].items() if entry["after"] is None}
    assert skipped  # 200 images of 64 px: Pneumothorax has no positive in train, Pneumonia one
    for name, entry in skipped.items():
        assert entry["before"]["positive"] < 2
        assert entry["skipped"] in (
            "no positive image in the training split",
            "a single positive image; SMOTE needs at least 2",
        )
        assert not (preprocessed / "balanced" / f"{name}_pixels.npy").exists()
        with pytest.raises(DatasetError) as error:
            load_balanced(preprocessed, name)
        assert str(error.value).startswith(f"No balanced training set for {name} in {preprocessed / 'balanced'}.")


def test_smotetomek_needs_both_classes():
    pixels = np.zeros((6, 4, 4), dtype=np.uint8)

    with pytest.raises(BalanceError) as error:
        smotetomek(pixels, np.zeros(6, dtype=np.uint8), seed=42)

    assert str(error.value) == "no positive image in the training split"


def test_it_needs_preprocessed_data(tmp_path):
    with pytest.raises(CommandError) as error:
        call_command("balance", "--data", tmp_path, verbosity=0, stdout=StringIO())

    assert str(error.value) == (
        f"No preprocessed data in {tmp_path} (missing manifest.json). "
        "Run manage.py preprocess --data-dir <NIH folder> first."
    )


def test_it_refuses_a_negative_cap(preprocessed):
    with pytest.raises(BalanceError) as error:
        balance(preprocessed, max_negatives=-1, progress=False)

    assert str(error.value) == "--max-negatives must be 0 (no cap) or more, not -1."
