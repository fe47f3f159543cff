"""Cross-validated ensembles (``train --folds K``), the batches they fit on and the random blur layer."""

import io
import json

import numpy as np
import pytest
from django.core.management import call_command

from dispredo_core.artefact import read_metadata
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import HOLDOUT_FILE, ONNX_FILE, PATIENTS_FILE
from mltrain import registry
from mltrain.batches import batches
from mltrain.config import TrainConfig, TrainingError
from mltrain.evaluation import EvaluationError, evaluate
from mltrain.folds import patient_folds
from mltrain.members import load_members
from mltrain.package import keras_files
from mltrain.tests.helpers import SPLIT_COUNTS, tiny_config


def test_folds_keep_each_patient_in_one_fold_and_spread_the_sources():
    rng = np.random.default_rng(0)
    patients = rng.integers(0, 120, 400)  # several images for many patients
    sources = np.where(patients % 2, 64, 256)  # a patient's images come from one source
    labels = (rng.random((400, 14)) < 0.1).astype(np.uint8)

    folds = patient_folds(patients, labels, sources, 5, seed=1)

    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    for patient in np.unique(patients):
        assert len(np.unique(folds[patients == patient])) == 1
    share = [np.mean(sources[folds == fold] == 64) for fold in range(5)]
    assert max(share) - min(share) < 0.2
    np.testing.assert_array_equal(folds, patient_folds(patients, labels, sources, 5, seed=1))


def test_folds_need_as_many_patients_as_folds():
    with pytest.raises(TrainingError, match="5 folds need at least 5 patients; the data has 3."):
        patient_folds(np.array([1, 2, 3, 3]), np.zeros((4, 14)), np.full(4, 64), 5, seed=0)


def test_batches_are_full_shuffled_each_epoch_and_cover_the_data():
    pixels = np.repeat(np.arange(20, dtype=np.uint8), 16).reshape(20, 4, 4)  # image i is all i
    labels = np.eye(20, 14, dtype=np.uint8)
    data = batches(pixels, labels, batch_size=8, seed=0)

    assert data.steps == 2  # 20 // 8: the remainder waits for a later shuffle
    first = [data[i] for i in range(data.steps)]
    assert all(x.shape == (8, 4, 4, 1) and x.dtype == np.float32 and y.shape == (8, 14) for x, y in first)
    for x, y in first:  # images keep their own labels
        rows = x[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(y, labels[rows])
    first_rows = np.concatenate([x[:, 0, 0, 0] for x, _ in first])
    assert len(set(first_rows)) == 16
    # The data is endless: the next items are the next epoch's shuffle.
    second = np.concatenate([data[data.steps + i][0][:, 0, 0, 0] for i in range(data.steps)])
    assert set(second) != set(first_rows)


def test_an_epochs_batches_depend_on_the_seed_and_the_epoch_alone():
    pixels = np.repeat(np.arange(20, dtype=np.uint8), 16).reshape(20, 4, 4)
    labels = np.eye(20, 14, dtype=np.uint8)
    from_start = batches(pixels, labels, batch_size=8, seed=5)
    resumed = batches(pixels, labels, batch_size=8, seed=5, first_epoch=3)

    for step in range(2):  # epoch 3 read after a restart is epoch 3 of the uninterrupted run
        np.testing.assert_array_equal(resumed[step][0], from_start[3 * 2 + step][0])
    assert not np.array_equal(batches(pixels, labels, batch_size=8, seed=6)[0][0], from_start[0][0])


def test_random_blur_is_off_at_inference_and_blurs_about_its_share_in_training():
    from mltrain.networks import RandomDegrade

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (400, 32, 32, 1)).astype(np.float32)  # noise: any blur changes it
    layer = RandomDegrade(0.5, 0.35, seed=7)

    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape
    changed = np.any(np.abs(out - images) > 1e-3, axis=(1, 2, 3))
    assert 0.4 < changed.mean() < 0.6
    # Blurred images keep their brightness but lose detail.
    assert np.abs(out[changed].mean() - images[changed].mean()) < 2.0
    assert out[changed].std() < images[changed].std()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_cross_validated_ensemble_serves_the_mean_of_its_members(tmp_path, data_dir):
    from mltrain.export import AGREEMENT_TOLERANCE, onnx_session, run_onnx

    # Uncalibrated: on this tiny random data calibration would flatten most findings to constants.
    version = registry.train_and_register(tiny_config(tmp_path, name="cv", folds=2, epochs=2, calibrate=False), verbosity=0)

    directory = registry.artefact_directory(version)
    metadata = read_metadata(directory)
    assert metadata["keras_files"] == ["fold-1.keras", "fold-2.keras"]
    assert metadata["config"]["folds"] == 2
    assert metadata["threshold_method"].startswith(
        "specificity 0.95 on the holdout negatives: out-of-fold predictions of 2 patient-grouped folds"
    )
    # Thresholds were chosen on every train + val image, each scored by the member that never saw it.
    pooled = SPLIT_COUNTS["train"] + SPLIT_COUNTS["val"]
    edema = version.metrics["val"]["findings"]["Edema"]
    assert edema["positives"] + edema["negatives"] == pooled
    fits = version.metrics["training"]["fits"]
    assert sorted(fits) == ["fold 1", "fold 2"]
    assert sum(fit["held_out_images"] for fit in fits.values()) == pooled

    members = [member.network for member in load_members(directory, metadata)]
    pixels = np.load(data_dir / "test_pixels.npy")
    probabilities, cams = run_onnx(onnx_session(directory / ONNX_FILE), pixels)
    images = pixels.astype(np.float32)[..., None]
    expected = np.mean([m.predict(images, verbose=0) for m in members], axis=0)
    assert probabilities.shape == (len(pixels), len(FINDINGS)) and cams.shape[-1] == len(FINDINGS)
    assert np.max(np.abs(probabilities - expected)) <= AGREEMENT_TOLERANCE
    assert not np.allclose(members[0].predict(images, verbose=0), members[1].predict(images, verbose=0))

    # Every validation patient was trained on, so the validation split can no longer be scored as unseen.
    recorded = json.loads((directory / PATIENTS_FILE).read_text())
    assert recorded["val"] == [] and len(recorded["train"]) == pooled
    with pytest.raises(EvaluationError, match="The val split shares 20 patient"):
        evaluate(version, split="val", data_dir=data_dir)
    report = evaluate(version, split="test", data_dir=data_dir)
    assert report["images"] == SPLIT_COUNTS["test"]

    # manage.py holdout rebuilds the same out-of-fold scores from the recorded folds, and with them
    # the same reliability and thresholds.
    with np.load(directory / HOLDOUT_FILE) as stored:
        written = {key: stored[key] for key in ("probabilities", "labels", "patients")}
    assert written["probabilities"].shape == (pooled, len(FINDINGS))
    call_command("holdout", "--version", "cv", verbosity=0, stdout=io.StringIO())
    with np.load(directory / HOLDOUT_FILE) as stored:
        np.testing.assert_allclose(stored["probabilities"], written["probabilities"], atol=1e-6)
        np.testing.assert_array_equal(stored["patients"], written["patients"])
    version.refresh_from_db()
    assert version.thresholds == pytest.approx(metadata["thresholds"], abs=1e-6)
    for name, row in metadata["reliability"]["findings"].items():
        assert version.reliability["findings"][name]["reliable"] == row["reliable"]
        assert version.reliability["findings"][name]["auroc"] == pytest.approx(row["auroc"], nan_ok=True)


def test_an_ensemble_has_one_network_file_per_fold():
    assert keras_files(TrainConfig(folds=3)) == ["fold-1.keras", "fold-2.keras", "fold-3.keras"]
    assert keras_files(TrainConfig()) == ["model.keras"]
    assert keras_files(TrainConfig(strategy="per-finding")) == [f"{finding}.keras" for finding in FINDINGS]
    assert "-cv3-s0-" in TrainConfig(size=64, folds=3).default_name()
