"""Multi-task training on each image's recorded age, sex and view, and mixup batches."""

import numpy as np
import pytest

from diagnosis.artefact import read_metadata
from mltrain import nih, registry, training
from mltrain.networks import AuxiliaryLoss, auxiliary_targets
from mltrain.tests.conftest import HEADER, point_at_label_file, write_label_file
from mltrain.tests.test_train import SPLIT_COUNTS, tiny_config
from mltrain.training import TrainConfig, TrainingError


def _row(name, age="45", sex="F", view="PA"):
    return [name, "No Finding", "0", name[:8].lstrip("0") or "0", age, sex, view, "2500", "2048", "0.143", "0.143"]


def test_attributes_are_read_in_the_order_asked_with_impossible_ages_clipped(tmp_path):
    path = tmp_path / "Data_Entry_2017.csv"
    write_label_file(path, HEADER, [
        _row("00000001_000.png", "57", "M", "PA"),
        _row("00000002_000.png", "414", "F", "AP"),
        _row("00000003_000.png", "30", "F", "PA"),
    ])

    attributes = nih.read_image_attributes(path, ["00000002_000.png", "00000001_000.png"])

    np.testing.assert_array_equal(attributes, [[100.0, 0.0, 1.0], [57.0, 1.0, 0.0]])
    assert attributes.dtype == np.float32


@pytest.mark.parametrize(
    "rows, message",
    [
        ([_row("00000001_000.png")], "Data_Entry_2017.csv does not list 1 of the images, e.g. 00000009_000.png."),
        ([_row("00000009_000.png", sex="X")],
         "Data_Entry_2017.csv line 2 (00000009_000.png) has gender 'X' and view 'PA'; expected M/F and AP/PA."),
        ([_row("00000009_000.png", age="old")], "Data_Entry_2017.csv line 2 (00000009_000.png) has the age 'old'."),
    ],
)
def test_attributes_refuse_unlisted_images_and_unreadable_values(tmp_path, rows, message):
    path = tmp_path / "Data_Entry_2017.csv"
    write_label_file(path, HEADER, rows)
    with pytest.raises(nih.NihDataError) as raised:
        nih.read_image_attributes(path, ["00000009_000.png"])
    assert str(raised.value) == message


def test_targets_standardise_age_and_the_loss_matches_its_formula():
    targets = auxiliary_targets([[70.0, 1.0, 0.0], [30.0, 0.0, 1.0]])
    np.testing.assert_allclose(targets, [[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])

    predictions = np.array([[0.5, 2.0, -1.0], [-1.0, 0.0, 3.0]], dtype=np.float32)
    loss = np.asarray(AuxiliaryLoss().call(targets, predictions))

    def bce(z, y):
        p = 1 / (1 + np.exp(-z))
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    expected = [
        ((0.5 - 1.0) ** 2 + bce(2.0, 1) + bce(-1.0, 0)) / 3,
        ((-1.0 + 1.0) ** 2 + bce(0.0, 0) + bce(3.0, 1)) / 3,
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_batches_carry_the_auxiliary_targets_and_mixup_mixes_images_and_targets_alike():
    pixels = np.repeat(np.arange(0, 200, 10, dtype=np.uint8), 16).reshape(20, 4, 4)  # image i is all 10 i
    labels = np.eye(20, dtype=np.uint8)  # one label per image, so a mix shows both weights
    extra = np.arange(20, dtype=np.float32)[:, None].repeat(3, axis=1)

    x, (y, a) = training.batches(pixels, labels, 8, seed=0, auxiliary=extra)[0]
    np.testing.assert_array_equal(a[:, 0], x[:, 0, 0, 0] / 10)

    x, (y, a) = training.batches(pixels, labels, 8, seed=0, auxiliary=extra, mixup=0.4)[0]
    assert y.max() < 1.0 or np.any((y > 0) & (y < 1))  # labels are no longer all 0/1
    # Each mixed image is w * one + (1 - w) * another, with w >= 0.5, and its targets mix the same way.
    weight = y.max(axis=1)
    assert np.all(weight >= 0.5 - 1e-6)
    np.testing.assert_allclose(a[:, 0], x[:, 0, 0, 0] / 10, rtol=1e-5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"auxiliary": 1.0, "strategy": "per-finding"},
         "auxiliary (predicting age, sex and view as well) applies to the multilabel strategy only."),
        ({"mixup": -0.2}, "mixup must not be negative, not -0.2."),
    ],
)
def test_config_checks_auxiliary_and_mixup(changes, message):
    with pytest.raises(ValueError) as raised:
        TrainConfig(**changes)
    assert str(raised.value) == message


def _with_label_file(data_dir, tmp_path):
    """Point the tiny data's manifest at an NIH folder whose label file lists its images."""
    names = np.concatenate([np.load(data_dir / f"{split}_names.npy") for split in SPLIT_COUNTS])
    rows = [_row(str(name), str(20 + i), "MF"[i % 2], ("AP", "PA")[i % 3 == 0]) for i, name in enumerate(names)]
    point_at_label_file(data_dir, tmp_path / "nih", rows)


@pytest.mark.django_db
def test_auxiliary_training_needs_the_label_file_of_the_data(tmp_path, data_dir):
    with pytest.raises(TrainingError, match=r"^--auxiliary needs the NIH label file the data came from \(synthetic\): No NIH label file in synthetic"):
        training.train(tiny_config(tmp_path, folds=2, auxiliary=0.5), verbosity=0)


@pytest.mark.slow
@pytest.mark.django_db
def test_an_auxiliary_mixup_ensemble_serves_only_the_findings(tmp_path, data_dir):
    _with_label_file(data_dir, tmp_path)

    version = training.train(tiny_config(tmp_path, name="aux", folds=2, epochs=2, auxiliary=0.5, mixup=0.2), verbosity=0)

    directory = registry.artefact_directory(version)
    metadata = read_metadata(directory)
    assert metadata["config"]["auxiliary"] == 0.5 and metadata["config"]["mixup"] == 0.2
    members = training.load_keras_models(directory, metadata)
    assert [m.output_shape for m in members] == [(None, 14), (None, 14)]
    assert all("auxiliary" not in [layer.name for layer in m.layers] for m in members)
    fitted = version.metrics["calibration"]
    assert len(fitted["slopes"]) == 14 and len(fitted["members"]) == 2
