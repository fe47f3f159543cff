import hashlib
import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dispredo_core.findings import FINDINGS
from mltrain.balance import BalanceError, balance, smotetomek
from mltrain.dataset import BALANCE_REPORT_FILE, SOURCES_ARRAY, DatasetError, Split, load_balanced, load_split
from mltrain.preprocess import preprocess


@pytest.fixture(scope="module")
def preprocessed_once(tmp_path_factory, nih_sample):
    root = tmp_path_factory.mktemp("balance")
    preprocess(nih_sample.build(root / "nih", nih_sample.pick(64, 200)), root / "out", size=16, workers=1, progress=False)
    return root / "out"


@pytest.fixture
def preprocessed(preprocessed_once, tmp_path):
    """conftest's ``preprocessed`` (200 sample images at 16 px), made once here and copied for each test."""
    return Path(shutil.copytree(preprocessed_once, tmp_path / "preprocessed"))


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


def imbalanced_learn_smotetomek(pixels, labels, seed):
    """The reference: imbalanced-learn's own SMOTETomek on float32 pixels, rounded back to uint8."""
    from imblearn.combine import SMOTETomek
    from imblearn.over_sampling import SMOTE
    from imblearn.under_sampling import TomekLinks

    neighbours = min(5, int(np.bincount(labels).min()) - 1)
    sampler = SMOTETomek(
        smote=SMOTE(k_neighbors=neighbours, random_state=seed), tomek=TomekLinks(sampling_strategy="all"), random_state=seed
    )
    flat, kept = sampler.fit_resample(pixels.reshape(len(pixels), -1).astype(np.float32), labels)
    return np.clip(np.rint(flat), 0, 255).astype(np.uint8).reshape(len(flat), *pixels.shape[1:]), kept


def test_on_the_sample_it_gives_the_images_of_imbalanced_learns_smotetomek(preprocessed):
    balance(preprocessed, seed=7, progress=False)  # no cap bites on 200 images

    train = load_split(preprocessed, "train")
    for finding in ("Infiltration", "Effusion", "Atelectasis"):
        labels = np.ascontiguousarray(train.labels[:, FINDINGS.index(finding)])
        expected_pixels, expected_labels = imbalanced_learn_smotetomek(np.asarray(train.pixels), labels, seed=7)
        pixels, kept = load_balanced(preprocessed, finding)
        assert np.array_equal(pixels, expected_pixels) and np.array_equal(kept, expected_labels), finding


def test_smotetomek_removes_the_same_tomek_links_on_overlapping_classes():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 40, (200, 2, 2), dtype=np.uint8)  # one distribution for both classes: many links
    labels = (np.arange(200) < 30).astype(np.uint8)

    pixels_out, kept = smotetomek(pixels, labels, seed=42)

    expected_pixels, expected_labels = imbalanced_learn_smotetomek(pixels, labels, seed=42)
    assert np.array_equal(pixels_out, expected_pixels) and np.array_equal(kept, expected_labels)
    assert len(kept) < 340 and kept.sum() == len(kept) - kept.sum()


def test_it_caps_positives_too(preprocessed):
    report = balance(preprocessed, method="none", max_negatives=0, max_positives=3, seed=42, progress=False)

    assert report["max_positives"] == 3
    capped = 0
    for name in FINDINGS:
        before, after = report["findings"][name]["before"], report["findings"][name]["after"]
        assert after == {"positive": min(before["positive"], 3), "negative": before["negative"]}
        assert report["findings"][name]["drawn"] == after
        capped += before["positive"] > 3
    assert capped >= 5


def test_it_balances_the_findings_asked_and_reports_each_as_it_ends(preprocessed):
    done = []

    report = balance(
        preprocessed, method="none", findings=["Mass", "Effusion"], progress=False, on_finding=lambda *args: done.append(args)
    )

    assert [name for name, _ in done] == ["Effusion", "Mass"] == list(report["findings"])
    assert all(entry["seconds"] >= 0 and entry is report["findings"][name] for name, entry in done)
    assert sorted(path.name for path in (preprocessed / "balanced").glob("*_labels.npy")) == [
        "Effusion_labels.npy", "Mass_labels.npy"
    ]


def test_it_refuses_an_unknown_finding(tmp_path):
    with pytest.raises(BalanceError) as error:
        balance(tmp_path, findings=["Mass", "Covid"], progress=False)

    assert str(error.value) == f"Unknown finding 'Covid'; expected one of {', '.join(FINDINGS)}."


def test_it_refuses_a_negative_positive_cap(tmp_path):
    with pytest.raises(BalanceError) as error:
        balance(tmp_path, max_positives=-2, progress=False)

    assert str(error.value) == "--max-positives must be 0 (no cap) or more, not -2."


def test_at_verbosity_2_it_writes_a_line_as_each_finding_ends(preprocessed):
    stdout = StringIO()

    call_command("balance", "--data", preprocessed, "--method", "none", "--max-positives", 2, verbosity=2, stdout=stdout)

    report = json.loads((preprocessed / "balanced" / BALANCE_REPORT_FILE).read_text())
    lines = [line for line in stdout.getvalue().splitlines() if line.startswith("Infiltration:")]
    entry = report["findings"]["Infiltration"]
    assert lines == [
        f"Infiltration: drew 2 + / {entry['before']['negative']:,} -, balanced to 2 + / {entry['before']['negative']:,} - "
        f"in {entry['seconds']} s"
    ]
    assert report["max_positives"] == 2
