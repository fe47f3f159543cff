"""Fitting one network (``mltrain.fit``): per-image normalisation, a moving average of the weights,
and early stopping that keeps the best watched epoch."""

import dataclasses
import io

import keras
import numpy as np
import pytest

from dispredo_core.findings import FINDINGS
from dispredo_core.serving import ONNX_FILE
from mltrain import dataset
from mltrain.export import AGREEMENT_TOLERANCE, export_onnx, onnx_session, run_onnx
from mltrain.fit import callbacks_module, fit_network
from mltrain.members import NetworkMember
from mltrain.networks import StandardiseImage, WeightedBinaryCrossentropy, build_model, predict
from mltrain.tests.helpers import SIZE, make_preprocessed, tiny_config


def test_each_image_is_standardised_over_its_own_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 1)).astype(np.float32)
    images[2] = 77.0  # a blank image

    out = keras.ops.convert_to_numpy(StandardiseImage()(images))

    np.testing.assert_allclose(out[:2].mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:2].std(axis=(1, 2, 3)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out[2], 0.0)  # stays blank instead of dividing by zero


def test_a_network_normalising_per_image_ignores_exposure_and_contrast(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(40, 200, (4, SIZE, SIZE, 1)).astype(np.float32)
    darker_flatter = 0.5 * images + 30.0  # another exposure and contrast of the same images

    def outputs(network, batch):
        # Batch statistics (training=True): an untrained network's inference-mode batch norm shrinks
        # every activation to nothing and outputs 0.5 whatever it is shown. No dropout, so no chance.
        return keras.ops.convert_to_numpy(network(batch, training=True))

    per_image = build_model(tiny_config(tmp_path, normalise="image", dropout=0.0))
    assert outputs(per_image, images).std() > 1e-3  # the outputs do depend on the images
    np.testing.assert_allclose(outputs(per_image, darker_flatter), outputs(per_image, images), atol=1e-5)
    # The fixed scaling does not: the option is what makes the difference.
    fixed = build_model(tiny_config(tmp_path, dropout=0.0))
    assert np.abs(outputs(fixed, darker_flatter) - outputs(fixed, images)).max() > 1e-3


def test_the_weight_average_is_what_is_scored_and_the_raw_weights_train_on():
    _, _, WeightAverage = callbacks_module()
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    start = [np.full_like(w, 1.0) for w in network.get_weights()]
    moved = [np.full_like(w, 3.0) for w in network.get_weights()]
    network.set_weights(start)
    average = WeightAverage(network, momentum=0.75)

    average.on_train_begin()
    network.set_weights(moved)  # as one training step would
    average.on_train_batch_end(0)
    average.on_epoch_end(0)
    # What validation and early stopping see: 0.75 * 1 + 0.25 * 3.
    for weight in network.get_weights():
        np.testing.assert_allclose(weight, 1.5)
    average.on_epoch_begin(1)
    # Training goes on from where the optimiser left it.
    for weight in network.get_weights():
        np.testing.assert_allclose(weight, 3.0)


@pytest.mark.slow
def test_options_are_trained_and_served_as_configured(tmp_path):
    """A tiny fit with both options exports a graph that serves what the kept (averaged) network
    computes, per-image normalisation included."""
    make_preprocessed(tmp_path / "data")
    config = dataclasses.replace(tiny_config(tmp_path), epochs=2, patience=2, ema=0.9, normalise="image")
    train, val = (dataset.load_split(tmp_path / "data", name) for name in ("train", "val"))
    network, fit = fit_network(
        config, len(FINDINGS), WeightedBinaryCrossentropy([1.0] * len(FINDINGS)),
        train.pixels, train.labels, val.pixels, val.labels, FINDINGS, "tiny", io.StringIO(), 0,
    )
    assert isinstance(network.get_layer("normalise"), StandardiseImage)
    assert fit["epochs_run"] == 2

    path = export_onnx([NetworkMember(network)], SIZE, tmp_path / ONNX_FILE)
    served, _ = run_onnx(onnx_session(path), val.pixels)
    assert np.abs(served - predict([network], val.pixels)).max() < AGREEMENT_TOLERANCE


@pytest.mark.slow
def test_early_stopping_neither_stops_nor_keeps_weights_within_min_epochs(tmp_path):
    from mltrain.metrics import mean_auroc, per_finding_auroc

    make_preprocessed(tmp_path / "data")
    config = dataclasses.replace(tiny_config(tmp_path), epochs=7, patience=1, min_epochs=4, ema=0.9)
    train, val = (dataset.load_split(tmp_path / "data", name) for name in ("train", "val"))
    network, fit = fit_network(
        config, len(FINDINGS), WeightedBinaryCrossentropy([1.0] * len(FINDINGS)),
        train.pixels, train.labels, val.pixels, val.labels, FINDINGS, "tiny", io.StringIO(), 0,
    )

    # Watching starts at epoch 5, so with patience 1 the earliest stop is after epoch 6.
    assert fit["epochs_run"] >= 6
    assert fit["best_epoch"] >= 5
    # The kept weights are the best watched epoch's: rescoring them gives its recorded figure.
    kept = mean_auroc(per_finding_auroc(np.asarray(val.labels), predict([network], val.pixels), FINDINGS))
    assert kept == pytest.approx(fit["best_val_mean_auroc"], abs=1e-6)
